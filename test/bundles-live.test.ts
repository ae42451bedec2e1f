import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundles, fleetServers, fleets, maskingRules, oauthClients, revocations, tenants } from "@/db/schema";
import { addTool } from "@/lib/catalog/service";
import { getBundle, listBundles, publishBundle, republishLiveBundles } from "@/lib/bundles/service";
import { publicKeys, type Kek } from "@/lib/bundles/signing";
import { verifyBundle } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("live bundle sections", () => {
  let t: TestDb;
  let owner: MadeUser;
  let tenantId: string;
  let otherTenant: string;
  let serverId: string;
  let fleetId: string;
  let idleFleet: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantId = (await makeTenant(t.db, owner.actor)).id;
    otherTenant = (await makeTenant(t.db, owner.actor)).id;
    serverId = (await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.live.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["tickets:read"] }),
    ))!.id;
    await addTool(owner.ctx, serverId, { name: "get_ticket", description: "get", inputSchema: { type: "object", properties: { id: { type: "string" } } }, annotations: {}, risk: "low" });
    await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["get_ticket"] } });
    fleetId = newId("fleet");
    idleFleet = newId("fleet");
    await t.db.insert(fleets).values([
      { id: fleetId, name: "live fleet" },
      { id: idleFleet, name: "never published" },
    ]);
    await t.db.insert(fleetServers).values([
      { fleetId, serverId },
      { fleetId: idleFleet, serverId },
    ]);
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
  });
  afterAll(() => t.close());

  const republish = (why: string) => t.db.transaction((tx) => republishLiveBundles(tx, owner.actor, kek, [serverId], why));

  it("does nothing while the live state is unchanged", async () => {
    expect(await republish("nothing changed")).toEqual([]);
    expect((await listBundles(owner.ctx, fleetId)).activeRevision).toBe(1);
  });

  it("signs a new revision carrying revocations, client approval and masking, and keeps the policies", async () => {
    const before = new Date("2026-11-27T10:00:00.000Z");
    await t.db.insert(revocations).values([
      { id: newId("revocation"), tenantId, serverId, userId: "alice", clientId: "cli", before: new Date(before.getTime() - 60_000), createdBy: "test" },
      { id: newId("revocation"), tenantId, serverId, userId: "alice", clientId: "cli", before, createdBy: "test" },
      // Another tenant's revocation, for a server this fleet does not serve the tenant on: not published.
      { id: newId("revocation"), tenantId: otherTenant, userId: "bob", before, createdBy: "test" },
    ]);
    await t.db.insert(oauthClients).values({ id: newId("client"), tenantId, clientId: "cli", status: "approved" });
    await t.db.update(tenants).set({ requireClientApproval: true }).where(eq(tenants.id, tenantId));
    await t.db.insert(maskingRules).values({ id: newId("mask"), serverId, tool: "get_ticket", paths: ["id"], mode: "hash", createdBy: "test" });

    const out = await republish("revoked alice");
    expect(out).toEqual([{ fleetId, revision: 2 }]);
    const b2 = await getBundle(owner.ctx, fleetId, 2);
    const content = await verifyBundle(b2, { keys: await publicKeys(t.db), fleetId, minRevision: 2 });
    // Only the latest cut-off per (tenant, user, client, server) is kept.
    expect(content.revocations).toEqual([{ tenantId, user: "alice", client: "cli", serverId, before: before.toISOString() }]);
    expect(content.approvedClients).toEqual([{ tenantId, clientId: "cli" }]);
    expect(content.clientApproval).toEqual([tenantId]);
    expect(content.masking).toEqual([{ serverId, tool: "get_ticket", paths: ["id"], mode: "hash" }]);
    const b1 = await getBundle(owner.ctx, fleetId, 1);
    expect(content.cedar).toEqual(b1.content.cedar);
    expect(content.manifest.parentRevision).toBe(1);
    // The fleet with nothing published stays unpublished.
    expect(await t.db.select().from(bundles).where(eq(bundles.fleetId, idleFleet))).toHaveLength(0);
    expect(await republish("again")).toEqual([]);
  });

  it("a regular publish carries the live sections too", async () => {
    const r = await publishBundle(owner.ctx, fleetId, { note: "policies" }, kek);
    const b = await getBundle(owner.ctx, fleetId, r.revision);
    expect(b.content.clientApproval).toEqual([tenantId]);
    expect(b.content.revocations).toHaveLength(1);
  });
});
