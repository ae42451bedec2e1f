import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions } from "@/db/schema";
import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
let tenantB: string;
let serverA: string;
let serverB: string;
let fleetId: string;
const H = 3_600_000;
const now = Math.floor(Date.now() / H) * H - 2 * H; // whole hours, so a day window reads rollups
type Row = { tenantId: string; tool: string | null; userId: string | null; clientId: string | null; outcome: "allow" | "deny" | "error"; determining: string[] };
let rows: Row[] = [];

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  serverA = (await makeServer(owner.ctx, tenantA))!.id;
  serverB = (await makeServer(owner.ctx, tenantB))!.id;
  fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverB] }))!.id;
  const tools = ["read", "write", "delete", null];
  const outcomes = ["allow", "deny", "error"] as const;
  rows = Array.from({ length: 400 }, (_, i) => ({
    tenantId: i % 5 === 0 ? tenantB : tenantA,
    tool: tools[i % 4]!,
    userId: i % 7 === 0 ? null : `user${i % 6}`,
    clientId: `client${i % 3}`,
    outcome: outcomes[(i * 7) % 3]!,
    determining: i % 4 === 0 ? [] : i % 4 === 1 ? ["pol_a"] : ["pol_a", `pol_${i % 2}`],
  }));
  await insertDecisions(
    t.db,
    rows.map((r, i) => ({ ...r, atMs: now - (i % 40) * 30 * 60_000 - 1000, serverId: r.tenantId === tenantA ? serverA : serverB, fleetId })),
  );
});
afterAll(() => t.close());

/** Counts per key, computed in JS from the inserted rows. */
function expected(rs: Row[], key: (r: Row) => (string | null)[]) {
  const m = new Map<string | null, number>();
  for (const r of rs) for (const k of key(r)) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}
const asMap = (gs: { key: string | null; count: number }[]) => new Map(gs.map((g) => [g.key, g.count]));
const window = { from: new Date(now - 3 * 86_400_000).toISOString(), to: new Date(now + H).toISOString() };

describe("decision group-by", () => {
  const cases: [string, (r: Row) => (string | null)[]][] = [
    ["tool", (r) => [r.tool]],
    ["user", (r) => [r.userId]],
    ["client", (r) => [r.clientId]],
    ["outcome", (r) => [r.outcome]],
    ["policy", (r) => (r.determining.length ? r.determining : [null])],
  ];
  for (const [by, key] of cases) {
    it(`counts per ${by} equal the raw counts, for the owner and for a tenant admin`, async () => {
      const o = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ ...window, by, limit: 50 }));
      expect(asMap(o.groups)).toEqual(expected(rows, key));
      expect(o.others).toBe(0);
      const a = await groupDecisions(adminA.ctx, decisionGroupQuery.parse({ ...window, by, limit: 50 }));
      expect(asMap(a.groups)).toEqual(
        expected(
          rows.filter((r) => r.tenantId === tenantA),
          key,
        ),
      );
    });
  }

  it("by outcome reads the rollups when they answer the filter", async () => {
    const g = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ ...window, by: "outcome" }));
    expect(g.source).toBe("rollups");
    const raw = await t.db.select().from(decisions);
    expect(g.total).toBe(raw.length);
  });

  it("keeps the largest groups and counts the rest in `others`", async () => {
    const g = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ ...window, by: "user", limit: 2 }));
    expect(g.groups).toHaveLength(2);
    expect(g.groups[0]!.count).toBeGreaterThanOrEqual(g.groups[1]!.count);
    expect(g.others + g.groups[0]!.count + g.groups[1]!.count).toBe(rows.length);
  });

  it("the policy filter keeps the decisions that policy determined (drill-down from a policy group)", async () => {
    const g = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ ...window, by: "outcome", policyId: "pol_0" }));
    expect(g.source).toBe("raw");
    expect(g.total).toBe(rows.filter((r) => r.determining.includes("pol_0")).length);
  });

  it("refuses an unknown grouping", () => {
    expect(decisionGroupQuery.safeParse({ by: "args" }).success).toBe(false);
  });
});
