/**
 * The Overview's operational health (lib/overview/health.ts) on seeded rows:
 * each count, and the scoping of a tenant admin to their own tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents, oauthClients, policies, scopeMappings, tools, vaultEntries } from "@/db/schema";
import { rebuildRollups } from "@/lib/decisions/rollups";
import { createFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import { overviewHealth } from "@/lib/overview/health";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { expectAppError } from "./expect";
import { makeServer, publishBundle } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let adminB: MadeUser;
let tenantA: string;
let tenantB: string;
const now = Date.now();
const ago = (ms: number) => new Date(now - ms);
const MIN = 60_000;
const HOUR = 3_600_000;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
  const sA = await makeServer(owner.ctx, tenantA);
  const sB = await makeServer(owner.ctx, tenantB);

  // Tools: one drifted in A (approved v1, latest v2); in-step, new and blocked ones that do not count; one drifted in B.
  const tool = (serverId: string, approved: string | null, latest: string, blocked = false) => ({
    id: newId("tool"),
    serverId,
    name: uniq("tool_"),
    approvedVersionId: approved,
    latestVersionId: latest,
    blocked,
  });
  await t.db.insert(tools).values([tool(sA.id, "v1", "v2"), tool(sA.id, "v1", "v1"), tool(sA.id, null, "v1"), tool(sA.id, "v1", "v2", true), tool(sB.id, "v1", "v2")]);

  // Vault: one due in A, one not yet due in A, one retired past due in A, one due in B.
  const entry = (serverId: string, tenantId: string, next: Date | null, status: "active" | "retired" = "active") => ({
    id: newId("vaultEntry"),
    serverId,
    tenantId,
    name: uniq("cred "),
    kind: "bearer" as const,
    placement: { in: "header" as const, name: "Authorization" },
    createdBy: "test",
    status,
    nextRotationAt: next,
    rotationIntervalDays: 30,
  });
  const extraA = await makeServer(owner.ctx, tenantA);
  const extraA2 = await makeServer(owner.ctx, tenantA);
  await t.db
    .insert(vaultEntries)
    .values([entry(sA.id, tenantA, ago(HOUR)), entry(extraA.id, tenantA, new Date(now + 24 * HOUR)), entry(extraA2.id, tenantA, ago(HOUR), "retired"), entry(sB.id, tenantB, ago(HOUR))]);

  // Clients: two pending in A, one approved in A, one pending in B.
  const client = (tenantId: string, status: "pending" | "approved") => ({ id: newId("client"), tenantId, clientId: uniq("https://client.example/"), status });
  await t.db.insert(oauthClients).values([client(tenantA, "pending"), client(tenantA, "pending"), client(tenantA, "approved"), client(tenantB, "pending")]);

  // Fleets: fA serves sA, published at revision 3, then a policy edited after it (unpublished);
  // fB serves sB, a mapping saved before its bundle (published, nothing pending).
  const fA = (await createFleet(owner.ctx, { name: uniq("Fleet "), serverIds: [sA.id] }))!;
  const fB = (await createFleet(owner.ctx, { name: uniq("Fleet "), serverIds: [sB.id] }))!;
  await t.db.insert(scopeMappings).values({ id: newId("scopeMapping"), serverId: sB.id, version: 1, mapping: {}, createdBy: "test", createdAt: ago(2 * HOUR) });
  for (const r of [1, 2, 3]) await publishBundle(t.db, fA.id, r);
  await publishBundle(t.db, fB.id, 1);
  await t.db
    .insert(policies)
    .values({ id: newId("policy"), tenantId: tenantA, serverId: sA.id, name: "late edit", kind: "cedar", cedar: "permit(principal, action, resource);", updatedAt: new Date(Date.now() + MIN) });

  // Agents: one online two revisions behind, one offline up to date, one revoked (ignored), one in fB online and current.
  const agent = (fleetId: string, rev: number | null, seen: Date | null, revoked = false) => ({
    id: newId("agent"),
    fleetId,
    name: uniq("agent-"),
    keyHash: "x",
    bundleRevision: rev,
    lastSeenAt: seen,
    revokedAt: revoked ? ago(MIN) : null,
  });
  await t.db.insert(agents).values([agent(fA.id, 1, ago(10_000)), agent(fA.id, 3, ago(10 * MIN)), agent(fA.id, null, ago(1000), true), agent(fB.id, 1, ago(5000))]);

  // Decisions two hours ago (complete hour, answered by the rollups): A 2 denies + 1 allow, B 3 allows.
  const at = now - 2 * HOUR;
  await insertDecisions(t.db, [
    ...[0, 1].map((i) => ({ atMs: at + i, serverId: sA.id, fleetId: fA.id, tenantId: tenantA, outcome: "deny" as const, tool: "t" })),
    { atMs: at + 2, serverId: sA.id, fleetId: fA.id, tenantId: tenantA, tool: "t" },
    ...[0, 1, 2].map((i) => ({ atMs: at + 3 + i, serverId: sB.id, fleetId: fB.id, tenantId: tenantB, tool: "t" })),
  ]);
  await rebuildRollups(t.db);
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe("overview health", () => {
  it("an owner sees every count across tenants, fleets and agents", async () => {
    const h = await overviewHealth(owner.ctx, {}, now);
    expect(h.toolsDrifted).toBe(2);
    expect(h.vaultDue).toBe(2);
    expect(h.clientsPending).toBe(3);
    expect(h.unpublishedFleets).toBe(1);
    expect(h.agents).toMatchObject({ total: 3, online: 2, behind: 1, maxBehind: 2 });
    expect(h.agents!.lastHeartbeatAt).toBe(ago(5000).toISOString());
    expect(h.decisions.bucket).toBe("hour");
    expect(h.decisions.totals).toEqual({ allow: 4, deny: 2, error: 0 });
  });

  it("a tenant admin sees only their tenant's counts, and no fleet or agent counts", async () => {
    const a = await overviewHealth(adminA.ctx, {}, now);
    expect(a).toMatchObject({ toolsDrifted: 1, vaultDue: 1, clientsPending: 2, agents: null, unpublishedFleets: null });
    expect(a.decisions.totals).toEqual({ allow: 1, deny: 2, error: 0 });
    const b = await overviewHealth(adminB.ctx, {}, now);
    expect(b).toMatchObject({ toolsDrifted: 1, vaultDue: 1, clientsPending: 1, agents: null, unpublishedFleets: null });
    expect(b.decisions.totals).toEqual({ allow: 3, deny: 0, error: 0 });
  });

  it("a tenant admin cannot ask for another tenant's counts", async () => {
    await expectAppError(overviewHealth(adminA.ctx, { tenantId: tenantB }, now), "not_found");
  });

  it("an owner filtering on one tenant gets that tenant's counts", async () => {
    const h = await overviewHealth(owner.ctx, { tenantId: tenantB }, now);
    expect(h).toMatchObject({ toolsDrifted: 1, vaultDue: 1, clientsPending: 1, agents: null, unpublishedFleets: null });
  });
});
