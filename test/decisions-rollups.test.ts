/**
 * Decision rollups (issue 15): the trigger-maintained tables equal the raw
 * counts, a duplicate is never counted twice (ingest resends, a line repeated
 * in a batch, a direct ON CONFLICT DO NOTHING), charts read from the rollups
 * answer what the raw rows answer (partial hours at the window's ends
 * included), retention drops rollups with their partitions, and the usage
 * query for least-privilege findings matches the raw rows. Runs on PGlite and
 * PostgreSQL.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { chartsFromRollups, decisionCharts, decisionChartsQuery, bucketFor } from "@/lib/decisions/charts";
import { ingestDecisions } from "@/lib/decisions/ingest";
import { runRetention } from "@/lib/decisions/retention";
import { decisionSearchQuery, searchDecisions } from "@/lib/decisions/query";
import { execRows, rebuildRollups, rollupStatement, spansOf, usageByServerTool, usageByTool } from "@/lib/decisions/rollups";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { idAt, insertDecisions, type RowSpec } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

const H = 3_600_000;
const DAY = 24 * H;
// Not on an hour: the chart windows have partial hours at both ends.
const now = Math.floor(Date.now() / H) * H + 37 * 60_000 + 12_345;

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
let tenantB: string;
let servers: string[];
let fleetId: string;
let agent: Pick<Agent, "id" | "fleetId">;

/** Deterministic pseudo-random numbers (a test that fails can be rerun as it was). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const rollupsVsRaw = async () => {
  // Every rollup row equals the raw count of its key; no key is missing on either side.
  const diff = async (q: ReturnType<typeof sql>) => execRows<Record<string, unknown>>(t.db, q);
  const rollupDiff = await diff(sql`
    with raw as (
      select g.grain, date_trunc(g.grain, at, 'UTC') as bucket, coalesce(tenant_id, '') as tenant_id, server_id, coalesce(tool, '') as tool,
             count(*) filter (where outcome = 'allow') as allow, count(*) filter (where outcome = 'deny') as deny, count(*) filter (where outcome = 'error') as error, max(at) as last_at
      from decisions cross join (values ('hour'), ('day')) g(grain) group by 1, 2, 3, 4, 5)
    (select 'raw' as side, * from raw except select 'raw', grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at from decision_rollups)
    union all
    (select 'rollup', grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at from decision_rollups except select 'rollup', * from raw)`);
  const actorDiff = await diff(sql`
    with raw as (
      select g.grain, date_trunc(g.grain, at, 'UTC') as bucket, coalesce(tenant_id, '') as tenant_id, k.kind, k.actor,
             count(*) filter (where outcome = 'allow') as allow, count(*) filter (where outcome = 'deny') as deny, count(*) filter (where outcome = 'error') as error, max(at) as last_at
      from decisions cross join (values ('hour'), ('day')) g(grain) cross join lateral (values ('user', user_id), ('client', client_id)) k(kind, actor)
      where k.actor is not null group by 1, 2, 3, 4, 5)
    (select 'raw' as side, * from raw except select 'raw', grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at from decision_actor_rollups)
    union all
    (select 'rollup', grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at from decision_actor_rollups except select 'rollup', * from raw)`);
  const usageDiff = await diff(sql`
    with raw as (
      select date_trunc('day', at, 'UTC') as day, coalesce(tenant_id, '') as tenant_id, server_id, coalesce(tool, '') as tool, coalesce(user_id, '') as user_id, coalesce(client_id, '') as client_id,
             method, scopes,
             count(*) filter (where outcome = 'allow') as allow, count(*) filter (where outcome = 'deny') as deny, count(*) filter (where outcome = 'error') as error,
             max(at) as last_at, max(at) filter (where outcome = 'allow') as last_allow_at, max(id) as last_id, max(id) filter (where outcome = 'allow') as last_allow_id
      from decisions group by 1, 2, 3, 4, 5, 6, 7, 8)
    (select 'raw' as side, * from raw except select 'raw', day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id from decision_usage)
    union all
    (select 'rollup', day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id from decision_usage except select 'rollup', * from raw)`);
  return { rollupDiff, actorDiff, usageDiff };
};
const expectRollupsExact = async () => expect(await rollupsVsRaw()).toEqual({ rollupDiff: [], actorDiff: [], usageDiff: [] });
const total = async () => Number((await execRows<{ n: string }>(t.db, sql`select (sum(allow + deny + error))::text as n from decision_rollups where grain = 'day'`))[0]?.n ?? 0);
const rawTotal = async () => Number((await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from decisions`))[0]!.n);

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  servers = [(await makeServer(owner.ctx, tenantA))!.id, (await makeServer(owner.ctx, tenantA))!.id, (await makeServer(owner.ctx, tenantB))!.id];
  fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: servers }))!.id;
  const e = await enrollAgent(t.db, { token: (await createEnrollmentToken(owner.ctx, fleetId)).token, name: uniq("agent-"), version: "t" });
  agent = { id: e.agentId, fleetId: e.fleetId };

  // 3,000 decisions over the last 40 days, denser in the last 2 days; some without tenant, tool, user or client.
  const r = rng(15);
  const specs: RowSpec[] = Array.from({ length: 3000 }, (_, i) => {
    const s = Math.floor(r() * 3);
    const recent = i % 2 === 0;
    return {
      atMs: now - Math.floor(r() * (recent ? 2 * DAY : 40 * DAY)),
      tenantId: i % 97 === 0 ? null : s === 2 ? tenantB : tenantA,
      serverId: servers[s]!,
      fleetId,
      method: i % 53 === 0 ? "tools/list" : "tools/call",
      tool: i % 53 === 0 ? null : `tool_${Math.floor(r() * 6)}`,
      userId: i % 41 === 0 ? null : `user${Math.floor(r() * 12)}`,
      clientId: i % 43 === 0 ? null : ["claude", "cursor", "zed"][Math.floor(r() * 3)]!,
      scopes: [["tickets:read"], ["tickets:read", "tickets:write"], []][i % 3]!,
      outcome: (["allow", "allow", "allow", "deny", "error"] as const)[Math.floor(r() * 5)]!,
      args: { q: `ticket ${i}` },
    };
  });
  await insertDecisions(t.db, specs);
});
afterAll(() => t.close());

describe("rollups", () => {
  it("equal the raw counts, per hour and per day, per actor and per usage key", async () => {
    expect(await total()).toBe(3000);
    await expectRollupsExact();
  });

  it("count a duplicate once: an ingest resend, a line repeated in one batch, a direct insert of a stored id", async () => {
    const before = await rawTotal();
    const ids = Array.from({ length: 30 }, (_, i) => idAt(now - 5 * 60_000 - i * 1000));
    const line = (id: string, i: number) =>
      JSON.stringify({ id, tenantId: tenantA, serverId: servers[0], method: "tools/call", tool: "dup_tool", user: "dupe", client: "claude", outcome: i % 3 ? "allow" : "deny" });
    const batch = [...ids.map(line), line(ids[0]!, 0), line(ids[1]!, 1)].join("\n");
    const first = await ingestDecisions(t.db, agent, batch, now);
    expect(first).toMatchObject({ accepted: 30, duplicates: 2, quarantined: 0 });
    const again = await ingestDecisions(t.db, agent, batch, now);
    expect(again).toMatchObject({ accepted: 0, duplicates: 32 });
    // The same rows inserted straight into the table: ON CONFLICT DO NOTHING stores (and counts) nothing.
    await t.db.execute(sql`insert into decisions (id, at, agent_id, fleet_id, server_id, method, tool, outcome)
      select id, at, agent_id, fleet_id, server_id, method, tool, outcome from decisions where tool = 'dup_tool' on conflict do nothing`);
    expect(await rawTotal()).toBe(before + 30);
    expect(await total()).toBe(before + 30);
    const [u] = await usageByTool(t.db, { tenantId: tenantA, since: new Date(now - DAY) }).then((rows) => rows.filter((x) => x.tool === "dup_tool"));
    expect(u).toMatchObject({ serverId: servers[0], user: "dupe", client: "claude", allow: 20, deny: 10, error: 0 });
    await expectRollupsExact();
  });

  it("two concurrent ingests of overlapping batches count each decision once", async () => {
    const before = await rawTotal();
    const ids = Array.from({ length: 3000 }, (_, i) => idAt(now - 60_000 - i));
    const line = (id: string) => JSON.stringify({ id, tenantId: tenantA, serverId: servers[1], method: "tools/call", tool: "race_tool", user: "racer", client: "zed", outcome: "allow" });
    const a = ids.slice(0, 2000).map(line).join("\n");
    const b = ids.slice(1000).map(line).join("\n");
    const [ra, rb] = await Promise.all([ingestDecisions(t.db, agent, a, now), ingestDecisions(t.db, agent, b, now)]);
    expect(ra.accepted + rb.accepted).toBe(3000);
    expect(await total()).toBe(before + 3000);
    await expectRollupsExact();
  });

  it("spans: whole days from days, whole hours from hours, partial hours from the raw rows", () => {
    const from = Date.UTC(2026, 0, 1, 10, 30);
    const to = Date.UTC(2026, 0, 4, 5, 15);
    expect(spansOf(from, to, true).map((s) => [s.source, new Date(s.from).toISOString(), new Date(s.to).toISOString()])).toEqual([
      ["raw", "2026-01-01T10:30:00.000Z", "2026-01-01T11:00:00.000Z"],
      ["hour", "2026-01-01T11:00:00.000Z", "2026-01-02T00:00:00.000Z"],
      ["day", "2026-01-02T00:00:00.000Z", "2026-01-04T00:00:00.000Z"],
      ["hour", "2026-01-04T00:00:00.000Z", "2026-01-04T05:00:00.000Z"],
      ["raw", "2026-01-04T05:00:00.000Z", "2026-01-04T05:15:00.000Z"],
    ]);
    expect(spansOf(from, from + 20 * 60_000, true)).toEqual([{ source: "raw", from, to: from + 20 * 60_000 }]);
  });

  const filters: Record<string, unknown>[] = [
    {},
    { tenantId: "A" },
    { from: "30d" },
    { from: "30d", tenantId: "A" },
    { from: "3d", tenantId: "B" },
    { from: "30d", outcome: "deny" },
    { from: "30d", outcome: "allow", tenantId: "A" },
    { from: "30d", tool: "tool_3" },
    { from: "30d", serverId: 1, tool: "tool_2", outcome: "deny" },
    { from: "7d", to: "1d" },
  ];
  it.each(filters)("charts from the rollups equal the raw scan (%o)", async (spec) => {
    const q: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(spec)) {
      if (k === "tenantId") q.tenantId = v === "A" ? tenantA : tenantB;
      else if (k === "serverId") q.serverId = servers[v as number];
      else if (k === "from" || k === "to") q[k] = new Date(now - Number(String(v).replace("d", "")) * DAY).toISOString();
      else q[k] = v;
    }
    const f = decisionChartsQuery.parse(q);
    const w = { from: new Date(f.from ?? now - DAY), to: new Date(f.to ?? now) };
    expect(chartsFromRollups(f, bucketFor(w.from, w.to))).toBe(true);
    const fast = await decisionCharts(owner.ctx, f, now);
    const raw = await decisionCharts(owner.ctx, f, now, { raw: true });
    expect(fast).toEqual(raw);
    expect(fast.totals.allow + fast.totals.deny + fast.totals.error).toBeGreaterThan(0);
  });

  it("charts from the rollups keep tenant scoping", async () => {
    const f = decisionChartsQuery.parse({ from: new Date(now - 30 * DAY).toISOString() });
    const mine = await decisionCharts(adminA.ctx, f, now);
    expect(mine).toEqual(await decisionCharts(adminA.ctx, f, now, { raw: true }));
    const a = await decisionCharts(owner.ctx, { ...f, tenantId: tenantA }, now);
    expect(mine.totals).toEqual(a.totals);
  });

  it("usage by tool and by server × tool equal the raw rows over whole days", async () => {
    const since = new Date(now - 10 * DAY);
    const dayStart = Math.floor(since.getTime() / DAY) * DAY;
    const usage = await usageByTool(t.db, { tenantId: tenantA, since });
    const raw = await execRows<{
      server_id: string;
      tool: string | null;
      user_id: string | null;
      client_id: string | null;
      allow: string;
      deny: string;
      error: string;
      last_at: Date | string;
      last_allow_at: Date | string | null;
    }>(
      t.db,
      sql`select server_id, tool, user_id, client_id, count(*) filter (where outcome = 'allow')::text as allow, count(*) filter (where outcome = 'deny')::text as deny,
                 count(*) filter (where outcome = 'error')::text as error, max(at) as last_at, max(at) filter (where outcome = 'allow') as last_allow_at
          from decisions where tenant_id = ${tenantA} and at >= ${new Date(dayStart).toISOString()}::timestamptz group by 1, 2, 3, 4`,
    );
    const key = (x: { serverId: string; tool: string | null; user: string | null; client: string | null }) => `${x.serverId}|${x.tool}|${x.user}|${x.client}`;
    const fromRaw = raw
      .map((r) => ({
        serverId: r.server_id,
        tool: r.tool,
        user: r.user_id,
        client: r.client_id,
        allow: Number(r.allow),
        deny: Number(r.deny),
        error: Number(r.error),
        lastAt: new Date(r.last_at).toISOString(),
        lastAllowAt: r.last_allow_at === null ? null : new Date(r.last_allow_at).toISOString(),
      }))
      .sort((x, z) => key(x).localeCompare(key(z)));
    expect(usage.sort((x, z) => key(x).localeCompare(key(z)))).toEqual(fromRaw);
    expect(usage.length).toBeGreaterThan(50);
    const st = await usageByServerTool(t.db, { tenantIds: [tenantA], since });
    const n = st.reduce((s, r) => s + r.allow + r.deny + r.error, 0);
    expect(n).toBe(fromRaw.reduce((s, r) => s + r.allow + r.deny + r.error, 0));
  });

  it("free text walks the window day by day: every match once, newest first, across pages", async () => {
    const from = new Date(now - 40 * DAY).toISOString();
    const to = new Date(now).toISOString();
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await searchDecisions(owner.ctx, decisionSearchQuery.parse({ from, to, q: "ticket 12", limit: 7, cursor }));
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    const raw = await execRows<{ id: string }>(
      t.db,
      sql`select id from decisions where args::text ilike '%ticket 12%' and at >= ${from}::timestamptz and at < ${to}::timestamptz order by at desc, id desc`,
    );
    expect(raw.length).toBeGreaterThan(50);
    expect(ids).toEqual(raw.map((r) => r.id));
  });

  it("the insert trigger (written out in migration 0025) runs the statement rebuildRollups runs, over the inserted rows", async () => {
    // Two copies of one statement (a migration is frozen SQL): this keeps them one. An edit of rollupStatement needs a
    // migration that replaces the trigger's function, or this fails.
    const [fn] = await execRows<{ src: string }>(t.db, sql`select prosrc as src from pg_proc where proname = 'decisions_rollup'`);
    const squash = (text: string) => text.replace(/\s+/g, " ").trim();
    expect(squash(fn!.src)).toContain(squash(rollupStatement("new_rows")));
  });

  it("rebuildRollups recomputes the same tables from the raw rows", async () => {
    await t.db.execute(sql`update decision_rollups set allow = allow + 1`);
    await t.db.execute(sql`delete from decision_usage where tool = 'tool_1'`);
    await rebuildRollups(t.db);
    await expectRollupsExact();
  });

  it("retention drops the rollups of the partitions it drops, and the rest still equal the raw counts", async () => {
    // Rows 100 days old (past the 90-day default retention).
    await insertDecisions(
      t.db,
      Array.from({ length: 20 }, (_, i) => ({ atMs: now - 100 * DAY + i * 1000, tenantId: tenantA, serverId: servers[0]!, fleetId, tool: "ancient", userId: "old" })),
    );
    await expectRollupsExact();
    const before = await total();
    const dropped = await runRetention(t.db, now);
    expect(dropped.length).toBeGreaterThan(0);
    expect(await total()).toBe(before - 20);
    const old = await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from decision_usage where tool = 'ancient'`);
    expect(old[0]!.n).toBe("0");
    await expectRollupsExact();
  });
});
