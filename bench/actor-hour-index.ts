/**
 * Prices a covering index on the hourly actor rollups (decision_actor_rollups_hour_idx: tried in migration
 * 0021, dropped in 0023) on the database bench/query.ts kept (KEEP=1): the group-by and chart reads that
 * touch the hour rows of a window's partial days, timed without the index (as shipped), with it (created
 * here, then VACUUM), and without it again, in one process on the same data; the index is dropped at the end.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx --conditions=react-server bench/actor-hour-index.ts
 */
import postgres from "postgres";
import { openDatabase } from "@/db/client";
import type { Actor } from "@/lib/auth/permissions";
import { decisionCharts } from "@/lib/decisions/charts";
import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { decisionSearchQuery } from "@/lib/decisions/query";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const RUNS = Number(process.env.RUNS ?? 20);
const u = new URL(url);
u.pathname = "/mandate_bench_query";
const h = await openDatabase({ url: u.toString(), max: 4 });
const raw = postgres(u.toString(), { max: 1, onnotice: () => {} });
const r = (await raw<{ lo: Date; hi: Date; n: string }[]>`select min(at) as lo, max(at) as hi, count(*)::text as n from decisions`)[0]!;
const end = new Date(r.hi).getTime() + 1;
const month = new Date(r.lo).toISOString();
console.log(`${Number(r.n).toLocaleString("en")} decisions; window ends at ${new Date(end).toISOString()}`);
const owner: Actor = { type: "user", id: "usr_bench", label: "bench", userId: "usr_bench", globalRole: "owner", tenantRoles: new Map() };
const ctx = { db: h.db, actor: owner };
const group = (by: string, q: Record<string, unknown> = {}) => groupDecisions(ctx, decisionGroupQuery.parse({ by, ...q }), end);
const cases: [string, () => Promise<unknown>][] = [
  ["group by user, all tenants, 30 days", () => group("user", { from: month })],
  ["group by client, tenant ten_3, 30 days", () => group("client", { from: month, tenantId: "ten_3" })],
  ["group by user, last 24 h", () => group("user", { from: new Date(end - 86_400_000).toISOString() })],
  ["charts, last 24 h (owner)", () => decisionCharts(ctx, decisionSearchQuery.parse({ from: new Date(end - 86_400_000).toISOString() }), end)],
];
async function time(label: string, fn: () => Promise<unknown>) {
  await fn();
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const s = performance.now();
    await fn();
    ms.push(performance.now() - s);
  }
  ms.sort((a, b) => a - b);
  const p = (q: number) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)]!.toFixed(1);
  console.log(`  ${label.padEnd(44)} p50 ${p(0.5).padStart(7)} ms   p95 ${p(0.95).padStart(7)} ms`);
}
const def = `create index decision_actor_rollups_hour_idx on decision_actor_rollups (bucket, tenant_id, kind, actor, allow, deny, error) where grain = 'hour'`;
await raw.unsafe("drop index if exists decision_actor_rollups_hour_idx");
let size = "";
for (const phase of ["without the index (as shipped)", "with it", "without it again"]) {
  if (phase === "with it") {
    const s = performance.now();
    await raw.unsafe(def);
    await raw.unsafe("vacuum (analyze) decision_actor_rollups");
    size = (await raw<{ s: string }[]>`select pg_size_pretty(pg_relation_size('decision_actor_rollups_hour_idx')) as s`)[0]!.s;
    console.log(`(index built and table vacuumed in ${((performance.now() - s) / 1000).toFixed(1)} s)`);
  }
  if (phase === "without it again") await raw.unsafe("drop index decision_actor_rollups_hour_idx");
  console.log(phase);
  for (const [label, fn] of cases) await time(label, fn);
}
console.log(`decision_actor_rollups_hour_idx: ${size}`);
await raw.end();
await h.close();
