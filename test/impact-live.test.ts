/**
 * Impact replay decides with decide() and today's live state: a draft that
 * would allow a call does not count as a flip when the agent would deny it
 * anyway (revoked grant, unapproved client, tool changed upstream). Before,
 * replay ran only Cedar and reported all three as deny → allow.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, fleetServers, fleets, oauthClients, toolVersions, tools, type NewDecision } from "@/db/schema";
import { analyzeImpact } from "@/lib/bundles/impact";
import { publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { addTool } from "@/lib/catalog/service";
import { ensurePartitions } from "@/lib/decisions/partitions";
import { revokeUser, setClientApproval } from "@/lib/grants/service";
import { newId } from "@/lib/ids";
import { createPolicy } from "@/lib/policy/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("impact replay with the live state", () => {
  let t: TestDb;
  let owner: MadeUser;
  let fleetId: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    const tenantId = (await makeTenant(t.db, owner.actor)).id;
    const serverId = (await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.impact.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: [] }),
    ))!.id;
    await addTool(owner.ctx, serverId, { name: "refund", description: "refund", inputSchema: { type: "object", properties: { amount: { type: "integer" } } }, annotations: {}, risk: "high" });
    const ticket = await addTool(owner.ctx, serverId, {
      name: "get_ticket",
      description: "get",
      inputSchema: { type: "object", properties: { id: { type: "string" } } },
      annotations: {},
      risk: "low",
    });
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: "impact live fleet" });
    await t.db.insert(fleetServers).values({ fleetId, serverId });
    await publishBundle(owner.ctx, fleetId, { note: "baseline: nothing allowed" }, kek);
    // The draft allows every call on the server.
    await createPolicy(owner.ctx, { tenantId, serverId, name: "allow all", description: "", kind: "cedar", cedar: `permit (principal, action == Action::"call_tool", resource);`, enabled: true });

    const at = new Date(Date.now() - 3600_000);
    const iat = Math.floor(at.getTime() / 1000);
    const row = (id: string, tool: string, userId: string, clientId: string): NewDecision => ({
      id,
      at,
      agentId: "agt_test",
      fleetId,
      bundleRevision: 1,
      tenantId,
      serverId,
      method: "tools/call",
      tool,
      userId,
      clientId,
      scopes: [],
      outcome: "deny",
      determining: [],
      args: tool === "refund" ? { amount: 5 } : { id: "T-1" },
      context: { groups: [], token: { iss: "https://as.example", iat, exp: iat + 7200 } },
    });
    const rows = [
      row("d-ok", "refund", "ok-user", "claude"),
      row("d-revoked", "refund", "gone-user", "claude"),
      row("d-unapproved", "refund", "ok-user", "shady"),
      row("d-drift", "get_ticket", "ok-user", "claude"),
    ];
    await ensurePartitions(t.db, [at.getTime()]);
    await t.db.insert(decisions).values(rows);

    // Live state: gone-user's grant revoked now (after those tokens were issued), only "claude" approved, get_ticket changed upstream.
    await revokeUser(owner.ctx, tenantId, "gone-user", { reason: "left" }, kek);
    await t.db.insert(oauthClients).values({ id: newId("client"), tenantId, clientId: "claude", status: "approved" });
    await setClientApproval(owner.ctx, tenantId, true, kek);
    const versionId = newId("toolVersion");
    await t.db.insert(toolVersions).values({
      id: versionId,
      toolId: ticket!.id,
      version: 2,
      description: "get, and now also delete",
      inputSchema: { type: "object", properties: { id: { type: "string" } } },
      hash: "sha256:changed",
      source: "import",
      createdBy: "import",
    });
    await t.db.update(tools).set({ latestVersionId: versionId }).where(eq(tools.id, ticket!.id));
  }, 60_000);
  afterAll(() => t?.close());

  it("counts only the call the agent would decide differently", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 100, examples: 10 });
    expect(r.totals.loaded).toBe(4);
    expect(r.totals.denyToAllow).toBe(1);
    expect(r.totals.allowToDeny).toBe(0);
    expect(r.totals.unchanged).toBe(3);
    expect(r.byTool.flatMap((g) => g.examples.map((e) => e.id))).toEqual(["d-ok"]);
  });
});
