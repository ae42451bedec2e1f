import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPolicy, getPolicy, updatePolicy } from "@/lib/policy/service";
import { addTool } from "@/lib/catalog/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

describe("policy edits: optimistic concurrency", () => {
  let t: TestDb;
  let admin: MadeUser;
  let policyId: string;

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    const tenantId = (await makeTenant(t.db, owner.actor)).id;
    admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    const server = await createServer(admin.ctx, createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.occ.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp" }));
    await addTool(admin.ctx, server!.id, { name: "get_ticket", description: "get", inputSchema: { type: "object", properties: {} }, annotations: {}, risk: "low" });
    const p = await createPolicy(admin.ctx, { tenantId, serverId: server!.id, name: "p", description: "", kind: "cedar", cedar: "permit (principal, action, resource);", enabled: true });
    policyId = p!.id;
  });
  afterAll(() => t.close());

  it("refuses a save based on an older version (409), and keeps the newer edit", async () => {
    const opened = await getPolicy(admin.ctx, policyId);
    // Two editors opened the same version; the first saves.
    const first = await updatePolicy(admin.ctx, policyId, { description: "first editor", baseUpdatedAt: opened.updatedAt });
    expect(first!.description).toBe("first editor");
    // The second one's base is now stale: refused, nothing overwritten.
    const err = await expectAppError(updatePolicy(admin.ctx, policyId, { description: "second editor", baseUpdatedAt: opened.updatedAt }), "conflict");
    expect(err.message).toMatch(/changed by someone else/);
    expect((await getPolicy(admin.ctx, policyId)).description).toBe("first editor");
    // Based on the current version it passes; without a base (API callers that opt out) too.
    const again = await updatePolicy(admin.ctx, policyId, { description: "second editor", baseUpdatedAt: first!.updatedAt });
    expect(again!.description).toBe("second editor");
    expect((await updatePolicy(admin.ctx, policyId, { enabled: false }))!.enabled).toBe(false);
  });
});
