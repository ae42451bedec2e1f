import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, type NewDecision } from "@/db/schema";
import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { execRows, rebuildRollups } from "@/lib/decisions/rollups";
import { createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { idAt, insertDecisions } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

/**
 * Group by policy from decision_policy_rollups (migration 0025): a decision counts once per distinct policy
 * id in `determining` and once under null when it has none. Over day, hour and minute windows (ends
 * mid-day and mid-hour, widened to whole buckets), for the owner, a tenant admin, a tenant and a server
 * filter and an outcome filter, the rollups must equal the raw scan and the raw rows themselves, after
 * batches were resent (duplicates skipped by ON CONFLICT DO NOTHING never count twice).
 */
const H = 3_600_000;
const D = 86_400_000;
let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
let serverA: string;
let stored: NewDecision[] = [];
const today = Math.floor(Date.now() / D) * D - D; // yesterday 00:00 UTC
const from = today - 4 * D + 17 * H + 20 * 60_000;
const to = today + 9 * H + 40 * 60_000;
// Policy sets: none, one, two, the same id twice (counts once), and a third policy.
const SETS: string[][] = [[], ["pol_a"], ["pol_a", "pol_b"], ["pol_b", "pol_b"], ["pol_c"], ["pol_b", "pol_a", "pol_b"]];

const policyRollups = () =>
  execRows<{ grain: string; bucket: string; tenant_id: string; server_id: string; policy_id: string | null; allow: string; deny: string; error: string }>(
    t.db,
    sql`select grain, bucket::text, tenant_id, server_id, policy_id, allow::text, deny::text, error::text from decision_policy_rollups order by 1, 2, 3, 4, 5 nulls first`,
  );

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  const tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  serverA = (await makeServer(owner.ctx, tenantA))!.id;
  const serverA2 = (await makeServer(owner.ctx, tenantA))!.id;
  const serverB = (await makeServer(owner.ctx, tenantB))!.id;
  const fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverA2, serverB] }))!.id;
  const outcomes = ["allow", "deny", "error"] as const;
  const times: number[] = [];
  for (let at = from - D; at < to + D; at += 37 * 60_000) times.push(at);
  for (let at = today + 7 * H + 60_000; at < today + 10 * H + 30 * 60_000; at += 4 * 60_000) times.push(at);
  const specs = times.map((at, i) => {
    // Every 17th row has no tenant (a refusal before one was known): the owner alone sees it.
    const tenantId = i % 17 === 0 ? null : i % 3 === 0 ? tenantB : tenantA;
    return {
      atMs: at,
      tenantId,
      serverId: tenantId === tenantB ? serverB : i % 2 ? serverA : serverA2,
      fleetId,
      tool: `tool${i % 4}`,
      outcome: outcomes[Math.floor(i / 3) % 3]!,
      determining: SETS[Math.floor(i / 2) % SETS.length]!,
    };
  });
  stored = await insertDecisions(t.db, specs);
  // Batches resent (an agent retrying after a lost answer): every third row again, then a batch mixing rows
  // already stored with new ones. Only the new rows count.
  await t.db
    .insert(decisions)
    .values(stored.filter((_, i) => i % 3 === 0))
    .onConflictDoNothing();
  const fresh = specs.slice(0, 40).map(({ atMs, ...s }) => ({ agentId: "agt_test", method: "tools/call", ...s, id: idAt(atMs + 1), at: new Date(atMs + 1) }));
  await t.db
    .insert(decisions)
    .values([...stored.slice(40, 120), ...fresh])
    .onConflictDoNothing();
  stored = [...stored, ...fresh];
});
afterAll(() => t.close());

const counts = (gs: { key: string | null; count: number; denied: number }[]) => new Map(gs.map((g) => [g.key, [g.count, g.denied]]));
const iso = (ms: number) => new Date(ms).toISOString();

/** Counts per distinct policy id (null: none) straight from the raw rows over [from, to), independent of groupDecisions. */
async function rawCounts(from: string, to: string, opts: { tenantId?: string; serverId?: string; outcome?: string }) {
  const rows = await execRows<{ key: string | null; n: string; denied: string }>(
    t.db,
    sql`select k.key, count(*)::text as n, count(*) filter (where outcome = 'deny')::text as denied
        from decisions d cross join lateral (select distinct e from jsonb_array_elements_text(d.determining) e union all select null where d.determining = '[]'::jsonb) k(key)
        where at >= ${from}::timestamptz and at < ${to}::timestamptz
          ${opts.tenantId ? sql`and tenant_id = ${opts.tenantId}` : sql``} ${opts.serverId ? sql`and server_id = ${opts.serverId}` : sql``}
          ${opts.outcome ? sql`and outcome = ${opts.outcome}` : sql``}
        group by 1`,
  );
  return new Map(rows.map((r) => [r.key, [Number(r.n), Number(r.denied)]]));
}

const windows = [
  { label: "3 days 16 h 20 min", bucket: "day", from, to },
  { label: "2 days 16 h 20 min", bucket: "hour", from: today - 2 * D + 17 * H + 20 * 60_000, to },
  { label: "1 h 49 min 29 s", bucket: "minute", from: today + 7 * H + 50 * 60_000 + 30_000, to: to - 1_000 },
];

describe("group by policy from decision_policy_rollups", () => {
  it("the resent batches stored each decision once", async () => {
    const [row] = await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from decisions`);
    expect(Number(row!.n)).toBe(stored.length);
  });

  for (const w of windows) {
    for (const outcome of [undefined, "deny", "error"] as const) {
      it(`${w.label} (whole ${w.bucket}s)${outcome ? `, outcome=${outcome}` : ""}: the rollups equal the raw scan and the raw rows, for the owner, a tenant admin, a tenant and a server filter`, async () => {
        const cases: [MadeUser, { tenantId?: string; serverId?: string }, { tenantId?: string; serverId?: string }][] = [
          [owner, {}, {}],
          [adminA, {}, { tenantId: tenantA }],
          [owner, { tenantId: tenantA }, { tenantId: tenantA }],
          [owner, { serverId: serverA }, { serverId: serverA }],
        ];
        for (const [m, filter, scope] of cases) {
          const q = decisionGroupQuery.parse({ from: iso(w.from), to: iso(w.to), by: "policy", outcome, limit: 50, ...filter });
          const r = await groupDecisions(m.ctx, q, to + H);
          const raw = await groupDecisions(m.ctx, q, to + H, { raw: true });
          expect(r.source).toBe("rollups");
          expect(raw.source).toBe("raw");
          expect(r.bucket).toBe(w.bucket);
          expect(r.total).toBeGreaterThan(0);
          expect(counts(r.groups)).toEqual(counts(raw.groups));
          expect(r.groups.map((g) => g.key)).toEqual(raw.groups.map((g) => g.key));
          expect([r.total, r.others, r.from, r.to]).toEqual([raw.total, raw.others, raw.from, raw.to]);
          const rows = await rawCounts(r.from, r.to, { ...scope, outcome });
          expect(counts(r.groups)).toEqual(rows);
          // Every policy set is in the window (the owner, no filter): none (null) and each id.
          if (!outcome && m === owner && !filter.tenantId && !filter.serverId) expect([...rows.keys()].map(String).sort()).toEqual(["null", "pol_a", "pol_b", "pol_c"]);
        }
      });
    }
  }

  it("a decision without a tenant counts for the owner only; a tenant admin sees its tenant's counts", async () => {
    const q = decisionGroupQuery.parse({ from: iso(from), to: iso(to), by: "policy", limit: 50 });
    const all = await groupDecisions(owner.ctx, q, to + H);
    const a = await groupDecisions(adminA.ctx, q, to + H);
    const noTenant = await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from decisions where tenant_id is null and at >= ${all.from}::timestamptz and at < ${all.to}::timestamptz`);
    expect(Number(noTenant[0]!.n)).toBeGreaterThan(0);
    expect(a.total).toBeLessThan(all.total);
  });

  it("the top groups and the others beyond the limit match the raw scan", async () => {
    const q = decisionGroupQuery.parse({ from: iso(from), to: iso(to), by: "policy", limit: 2 });
    const r = await groupDecisions(owner.ctx, q, to + H);
    const raw = await groupDecisions(owner.ctx, q, to + H, { raw: true });
    expect(r.groups).toHaveLength(2);
    expect(r.others).toBeGreaterThan(0);
    expect([r.groups, r.others, r.total]).toEqual([raw.groups, raw.others, raw.total]);
  });

  it("filters the rollups do not keep (tool, user, policy, method, free text) read the raw rows", async () => {
    for (const f of [{ tool: "tool1" }, { user: "u" }, { policyId: "pol_a" }, { method: "tools/call" }, { q: "x" }]) {
      const r = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ from: iso(from), to: iso(to), by: "policy", ...f }), to + H);
      expect(r.source).toBe("raw");
    }
  });

  it("the same rows resent again change nothing, new rows are counted, and rebuildRollups recomputes the same table", async () => {
    const before = await policyRollups();
    await t.db.insert(decisions).values(stored.slice(0, 500)).onConflictDoNothing();
    expect(await policyRollups()).toEqual(before);
    await rebuildRollups(t.db);
    expect(await policyRollups()).toEqual(before);
    const q = decisionGroupQuery.parse({ from: iso(from), to: iso(to), by: "policy", limit: 50 });
    const r0 = await groupDecisions(owner.ctx, q, to + H);
    const at = today + 3 * H;
    await t.db.insert(decisions).values([
      {
        id: idAt(at),
        at: new Date(at),
        agentId: "agt_test",
        fleetId: stored[0]!.fleetId,
        serverId: serverA,
        tenantId: tenantA,
        method: "tools/call",
        outcome: "deny",
        determining: ["pol_a", "pol_a", "pol_new"],
      },
    ]);
    const r1 = await groupDecisions(owner.ctx, q, to + H);
    const delta = (k: string | null) => (counts(r1.groups).get(k)?.[0] ?? 0) - (counts(r0.groups).get(k)?.[0] ?? 0);
    expect([delta("pol_a"), delta("pol_new"), delta("pol_b"), delta(null)]).toEqual([1, 1, 0, 0]);
    expect(counts(r1.groups).get("pol_new")).toEqual([1, 1]);
  });
});
