import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { execRows, spansOf } from "@/lib/decisions/rollups";
import { createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

/**
 * Group-by over windows whose ends fall mid-day and mid-hour: the window is widened to whole UTC buckets
 * (days beyond 3 days, hours up to 3 days, minutes up to 2 h), the answer names it (from, to, bucket), and
 * the rollups (day rows only for the long window; hour and day rows; raw, hour and raw rows for the short
 * one) must equal the raw rows of that widened window for every key, under each viewer's tenant scoping.
 */
const H = 3_600_000;
const D = 86_400_000;
let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
// The longest window: from 17:20 four days ago to 09:40 today (UTC); shorter ones end there too.
const today = Math.floor(Date.now() / D) * D - D; // yesterday 00:00 UTC: every row is in the past
const from = today - 4 * D + 17 * H + 20 * 60_000;
const to = today + 9 * H + 40 * 60_000;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  const tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  const serverA = (await makeServer(owner.ctx, tenantA))!.id;
  const serverB = (await makeServer(owner.ctx, tenantB))!.id;
  const fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverB] }))!.id;
  const outcomes = ["allow", "deny", "error"] as const;
  // Rows outside the windows, on their edges and inside: every 37 minutes from a day before the longest
  // window to a day after it, and every 4 minutes from 07:01 to 10:30 today (the short window's raw edges).
  const specs = [];
  const times: number[] = [];
  for (let at = from - D; at < to + D; at += 37 * 60_000) times.push(at);
  for (let at = today + 7 * H + 60_000; at < today + 10 * H + 30 * 60_000; at += 4 * 60_000) times.push(at);
  for (const [i, at] of times.entries()) {
    const tenantId = i % 3 === 0 ? tenantB : tenantA;
    specs.push({
      atMs: at,
      tenantId,
      serverId: tenantId === tenantA ? serverA : serverB,
      fleetId,
      tool: i % 5 === 0 ? null : `tool${i % 4}`,
      userId: i % 11 === 0 ? null : `user${i % 7}`,
      clientId: i % 13 === 0 ? null : `client${i % 3}`,
      outcome: outcomes[Math.floor(i / 3) % 3]!,
    });
  }
  await insertDecisions(t.db, specs);
});
afterAll(() => t.close());

const counts = (gs: { key: string | null; count: number; denied: number }[]) => new Map(gs.map((g) => [g.key, [g.count, g.denied]]));
const iso = (ms: number) => new Date(ms).toISOString();

/** Counts per key straight from the raw rows over [from, to), independent of groupDecisions. */
async function rawCounts(by: "user" | "client" | "tool", from: string, to: string, opts: { tenantId?: string; outcome?: string }) {
  const col = sql.raw(by === "user" ? "user_id" : by === "client" ? "client_id" : "nullif(tool, '')");
  const rows = await execRows<{ key: string | null; n: string; denied: string }>(
    t.db,
    sql`select ${col} as key, count(*)::text as n, count(*) filter (where outcome = 'deny')::text as denied from decisions
        where at >= ${from}::timestamptz and at < ${to}::timestamptz
          ${opts.tenantId ? sql`and tenant_id = ${opts.tenantId}` : sql``} ${opts.outcome ? sql`and outcome = ${opts.outcome}` : sql``}
        group by 1`,
  );
  return new Map(rows.map((r) => [r.key, [Number(r.n), Number(r.denied)]]));
}

// The filter's window (ends mid-day and mid-hour) → the window counted (whole buckets) → the spans read.
const windows = [
  { label: "3 days 16 h 20 min", bucket: "day", from, to, wide: [today - 4 * D, today + D], spans: ["day"] },
  { label: "2 days 16 h 20 min", bucket: "hour", from: today - 2 * D + 17 * H + 20 * 60_000, to, wide: [today - 2 * D + 17 * H, today + 10 * H], spans: ["hour", "day", "hour"] },
  { label: "1 h 49 min 29 s", bucket: "minute", from: today + 7 * H + 50 * 60_000 + 30_000, to: to - 1_000, wide: [today + 7 * H + 50 * 60_000, to], spans: ["raw", "hour", "raw"] },
];

describe("group-by over the filter's window widened to whole buckets, ends mid-day and mid-hour", () => {
  for (const w of windows) {
    it(`${w.label}: the answer names the window widened to whole ${w.bucket}s, and the rollups read ${w.spans.join(", ")}`, async () => {
      const q = decisionGroupQuery.parse({ from: iso(w.from), to: iso(w.to), by: "user", limit: 50 });
      const r = await groupDecisions(owner.ctx, q, to + H);
      expect([r.from, r.to]).toEqual(w.wide.map(iso));
      expect(r.bucket).toBe(w.bucket);
      expect(spansOf(w.wide[0]!, w.wide[1]!, true).map((s) => s.source)).toEqual(w.spans);
      // The answer counts every row of the widened window (which may hold rows the filter's window does not).
      const n = (m: Map<unknown, number[]>) => [...m.values()].reduce((a, v) => a + v[0]!, 0);
      expect(r.total).toBe(n(await rawCounts("user", r.from, r.to, {})));
      if (w.bucket === "day") expect(r.total).toBeGreaterThan(n(await rawCounts("user", iso(w.from), iso(w.to), {})));
    });

    for (const by of ["user", "client", "tool"] as const) {
      for (const outcome of [undefined, "deny", "allow"] as const) {
        it(`${w.label} (whole ${w.bucket}s), by ${by}${outcome ? `, outcome=${outcome}` : ""}: the rollups equal the raw rows of the widened window, for the owner, a tenant admin and a tenant filter`, async () => {
          const cases: [MadeUser, string | undefined, string | undefined][] = [
            [owner, undefined, undefined],
            [adminA, undefined, tenantA],
            [owner, tenantA, tenantA],
          ];
          for (const [m, tenantId, scope] of cases) {
            const q = decisionGroupQuery.parse({ from: iso(w.from), to: iso(w.to), by, outcome, tenantId, limit: 50 });
            const r = await groupDecisions(m.ctx, q, to + H);
            const raw = await groupDecisions(m.ctx, q, to + H, { raw: true });
            expect(r.source).toBe("rollups");
            expect(raw.source).toBe("raw");
            expect(r.total).toBeGreaterThan(0);
            expect(counts(r.groups)).toEqual(counts(raw.groups));
            expect([r.total, r.others, r.from, r.to]).toEqual([raw.total, raw.others, raw.from, raw.to]);
            // And the rows themselves over the answer's window, scoped as the viewer is (a tenant admin sees tenant A only).
            expect(counts(r.groups)).toEqual(await rawCounts(by, r.from, r.to, { tenantId: scope, outcome }));
          }
        });
      }
    }
  }

  it("the window without an end (now) is widened too, and by outcome names the charts' window", async () => {
    const now = today + 9 * H + 40 * 60_000;
    const q = decisionGroupQuery.parse({ from: iso(from), by: "outcome" });
    const r = await groupDecisions(owner.ctx, q, now);
    expect([r.from, r.to, r.bucket]).toEqual([iso(today - 4 * D), iso(today + D), "day"]);
    const all = await rawCounts("user", r.from, r.to, {});
    expect(r.total).toBe([...all.values()].reduce((a, v) => a + v[0]!, 0));
    const byUser = await groupDecisions(owner.ctx, decisionGroupQuery.parse({ from: iso(from), by: "user", limit: 50 }), now);
    expect([byUser.from, byUser.to, byUser.total]).toEqual([r.from, r.to, r.total]);
  });
});
