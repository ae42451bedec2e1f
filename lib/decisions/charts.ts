import "server-only";
import { and, sql, type SQL } from "drizzle-orm";
import { decisions } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { decisionFilter, filterConditions, readableTenants, windowOf, type DecisionFilter } from "./query";
import { execRows, spansOf, tenantCond, type Span } from "./rollups";

/** Charts take the search filter as it is (no paging). */
export const decisionChartsQuery = decisionFilter;

export type Bucket = "minute" | "hour" | "day";

/** Bucket size for a window: at most ~120 minute bars, ~72 hour bars, else days. */
export function bucketFor(from: Date, to: Date): Bucket {
  const ms = to.getTime() - from.getTime();
  if (ms <= 2 * 3600_000) return "minute";
  if (ms <= 3 * 86_400_000) return "hour";
  return "day";
}

/**
 * The filter's window widened to whole UTC buckets of the size bucketFor picks (minute up to 2 h,
 * hour up to 3 days, else day): the start rounded down, the end up. Charts and group-by read this
 * window (and answer it as from/to), so a month is whole days of day rollups, with no hour or raw edges.
 */
export function wholeBuckets<F extends DecisionFilter>(f0: F, now: number): { f: F; bucket: Bucket; from: Date; to: Date } {
  const w0 = windowOf(f0, false, now);
  const bucket = bucketFor(w0.from, w0.to!);
  const unitMs = bucket === "minute" ? 60_000 : bucket === "hour" ? 3_600_000 : 86_400_000;
  const from = new Date(Math.floor(w0.from.getTime() / unitMs) * unitMs);
  const to = new Date(Math.ceil(w0.to!.getTime() / unitMs) * unitMs);
  return { f: { ...f0, from: from.toISOString(), to: to.toISOString() }, bucket, from, to };
}

const TOP = 10;

type Outcome = "allow" | "deny" | "error";
interface Point {
  t: string;
  allow: number;
  deny: number;
  error: number;
}
export interface Charts {
  bucket: Bucket;
  from: string;
  to: string;
  series: Point[];
  totals: { allow: number; deny: number; error: number };
  topDeniedTools: { serverId: string; tool: string; count: number }[];
  topUsers: { user: string; count: number; denied: number }[];
  topClients: { client: string; count: number; denied: number }[];
}

/**
 * Whether the rollups answer this filter exactly: they are kept per hour and
 * day × tenant × server × tool (and × user or client), so minute buckets and
 * filters on what they do not keep (free text, method, determining policy, bundle revision, user,
 * client) read the raw rows.
 */
export const chartsFromRollups = (f: DecisionFilter, bucket: Bucket) => bucket !== "minute" && !f.q && !f.method && !f.policyId && f.bundleRevision === undefined && !f.user && !f.client;

/**
 * Decisions over time by outcome, top denied tools, top users and top
 * clients, under the same filter and tenant scoping as the search, over the
 * window widened to whole buckets (the answer's from/to). Read from the
 * rollups when they answer the filter exactly (see chartsFromRollups): whole
 * days from the day rollups, whole hours from the hour rollups (and any
 * partial hour from the raw rows), so the answer is the one the raw rows
 * give. `raw: true` forces the raw scan (tests, bench).
 */
export async function decisionCharts(ctx: Ctx, f0: DecisionFilter, now = Date.now(), opts: { raw?: boolean } = {}): Promise<Charts> {
  // Whole buckets: the window is widened to the bucket boundaries (UTC), so the first and last bars
  // are complete, and the rollups answer a window without raw or hourly edges.
  const { f, bucket } = wholeBuckets(f0, now);
  const w = windowOf(f, false, now);
  const conds = filterConditions(ctx, f, { now });
  const empty: Charts = { bucket, from: w.from.toISOString(), to: w.to!.toISOString(), series: [], topDeniedTools: [], topUsers: [], topClients: [], totals: { allow: 0, deny: 0, error: 0 } };
  if (!conds) return empty;
  if (!opts.raw && chartsFromRollups(f, bucket)) return rollupCharts(ctx, f, bucket as "hour" | "day", w.from.getTime(), w.to!.getTime(), empty);
  // One scan for all four answers (GROUPING SETS): the filtered rows are read
  // once instead of four times. Top lists keep their 10 best in SQL.
  const unit = sql.raw(`'${bucket}'`); // one of three literals
  const result = await ctx.db.execute(sql`
    with d as (
      select (extract(epoch from date_trunc(${unit}, ${decisions.at}, 'UTC')) * 1000)::bigint as b,
             ${decisions.outcome} as outcome, ${decisions.serverId} as server_id, ${decisions.tool} as tool,
             ${decisions.userId} as user_id, ${decisions.clientId} as client_id
      from ${decisions} where ${and(...conds)}
    ), g as (
      select case when grouping(b, outcome) = 0 then 's' when grouping(server_id, tool) = 0 then 't' when grouping(user_id) = 0 then 'u' else 'c' end as k,
             b, outcome, server_id, tool, user_id, client_id,
             count(*)::int as n, (count(*) filter (where outcome = 'deny'))::int as denied
      from d group by grouping sets ((b, outcome), (server_id, tool), (user_id), (client_id))
    )
    select * from (
      select g.*, row_number() over (partition by k order by case when k = 't' then denied else n end desc, coalesce(tool, user_id, client_id), server_id) as rn
      from g
      where k = 's' or (k = 't' and tool is not null and denied > 0) or (k = 'u' and user_id is not null) or (k = 'c' and client_id is not null)
    ) x
    where k = 's' or rn <= ${TOP}`);
  type Row = {
    k: "s" | "t" | "u" | "c";
    b: string | number | null;
    outcome: "allow" | "deny" | "error" | null;
    server_id: string | null;
    tool: string | null;
    user_id: string | null;
    client_id: string | null;
    n: number;
    denied: number;
    rn: number | string;
  };
  const rows = (Array.isArray(result) ? result : ((result as { rows?: Row[] }).rows ?? [])) as Row[];
  const byRank = (a: Row, z: Row) => Number(a.rn) - Number(z.rn);
  const series = rows.filter((r) => r.k === "s").sort((a, z) => Number(a.b) - Number(z.b));
  const denied = rows.filter((r) => r.k === "t").sort(byRank);
  const users = rows.filter((r) => r.k === "u").sort(byRank);
  const clients = rows.filter((r) => r.k === "c").sort(byRank);
  // One point per bucket with a count per outcome.
  const byTime = new Map<string, { t: string; allow: number; deny: number; error: number }>();
  const totals = { allow: 0, deny: 0, error: 0 };
  for (const r of series) {
    const t = new Date(Number(r.b)).toISOString();
    const p = byTime.get(t) ?? { t, allow: 0, deny: 0, error: 0 };
    p[r.outcome!] += Number(r.n);
    totals[r.outcome!] += Number(r.n);
    byTime.set(t, p);
  }
  return {
    ...empty,
    series: [...byTime.values()],
    totals,
    topDeniedTools: denied.map((r) => ({ serverId: r.server_id!, tool: r.tool!, count: Number(r.denied) })),
    topUsers: users.map((r) => ({ user: r.user_id!, count: Number(r.n), denied: Number(r.denied) })),
    topClients: clients.map((r) => ({ client: r.client_id!, count: Number(r.n), denied: Number(r.denied) })),
  };
}

const num = (v: unknown) => Number(v ?? 0);

/** The charts from the rollups plus the raw rows of the partial hours at the window's ends (see decisionCharts). */
async function rollupCharts(ctx: Ctx, f: DecisionFilter, bucket: "hour" | "day", from: number, to: number, empty: Charts): Promise<Charts> {
  const tenants = readableTenants(ctx, f.tenantId);
  const spans = spansOf(from, to, bucket === "day");
  const unit = sql.raw(`'${bucket}'`); // one of two literals
  // Under an outcome filter the other outcomes' counts are zero, as in the raw rows.
  const col = (o: Outcome) => (f.outcome && f.outcome !== o ? sql`0::bigint` : sql.raw(o === "error" ? `"error"` : o));
  const rawConds = (s: Span): SQL => and(...filterConditions(ctx, { ...f, from: new Date(s.from).toISOString(), to: new Date(s.to).toISOString() })!)!;
  const range = (s: Span, c: string) => sql`grain = ${s.source} and ${sql.raw(c)} >= ${new Date(s.from).toISOString()}::timestamptz and ${sql.raw(c)} < ${new Date(s.to).toISOString()}::timestamptz`;
  const union = (parts: SQL[]) => sql.join(parts, sql` union all `);
  // Under an outcome filter, rollup rows without that outcome add nothing: skip them.
  const onlyOutcome = f.outcome ? sql`and ${sql.raw(f.outcome === "error" ? `"error"` : f.outcome)} > 0` : sql``;

  // Series and top denied tools: decision_rollups.
  const toolRows = spans.map((s) =>
    s.source === "raw"
      ? sql`select date_trunc(${unit}, at, 'UTC') as b, server_id, coalesce(tool, '') as tool,
                   (outcome = 'allow')::int::bigint as a, (outcome = 'deny')::int::bigint as d, (outcome = 'error')::int::bigint as e
            from ${decisions} where ${rawConds(s)}`
      : sql`select date_trunc(${unit}, bucket, 'UTC') as b, server_id, tool, ${col("allow")} as a, ${col("deny")} as d, ${col("error")} as e
            from decision_rollups where ${range(s, "bucket")} and ${tenantCond(sql`tenant_id`, tenants)} ${onlyOutcome}
              ${f.serverId ? sql`and server_id = ${f.serverId}` : sql``} ${f.tool ? sql`and tool = ${f.tool}` : sql``}`,
  );
  // Top users and clients: decision_actor_rollups, which keep no server or tool: with those filters, the raw rows.
  const actorsRaw = Boolean(f.serverId || f.tool);
  const actorSpans: Span[] = actorsRaw ? [{ source: "raw", from, to }] : spans;
  const actorRows = actorSpans.flatMap((s) =>
    s.source === "raw"
      ? (["user", "client"] as const).map((k) => {
          const c = sql.raw(k === "user" ? "user_id" : "client_id");
          return sql`select ${k}::text as kind, ${c} as actor, (outcome = 'allow')::int::bigint as a, (outcome = 'deny')::int::bigint as d, (outcome = 'error')::int::bigint as e
                     from ${decisions} where ${rawConds(s)} and ${c} is not null`;
        })
      : [
          sql`select kind, actor, ${col("allow")} as a, ${col("deny")} as d, ${col("error")} as e
              from decision_actor_rollups where ${range(s, "bucket")} and ${tenantCond(sql`tenant_id`, tenants)} ${onlyOutcome}`,
        ],
  );

  type TRow = { k: "s" | "t"; b: Date | string | null; server_id: string | null; tool: string | null; a: string; d: string; e: string; rn: string | number };
  type ARow = { kind: "user" | "client"; actor: string; n: string; denied: string; rn: string | number };
  const [tRows, aRows] = await Promise.all([
    execRows<TRow>(
      ctx.db,
      sql`with s as (${union(toolRows)}),
           g as (select case when grouping(b) = 0 then 's' else 't' end as k, b, server_id, tool, sum(a) as a, sum(d) as d, sum(e) as e
                 from s group by grouping sets ((b), (server_id, tool)))
          select * from (
            select g.*, row_number() over (partition by k order by d desc, tool, server_id) as rn from g
            where (k = 's' and a + d + e > 0) or (k = 't' and tool <> '' and d > 0)
          ) x where k = 's' or rn <= ${TOP}`,
    ),
    execRows<ARow>(
      ctx.db,
      sql`select * from (
            select kind, actor, n, denied, row_number() over (partition by kind order by n desc, actor) as rn
            from (select kind, actor, sum(a + d + e) as n, sum(d) as denied from (${union(actorRows)}) u group by kind, actor) g
            where n > 0
          ) x where rn <= ${TOP}`,
    ),
  ]);
  const totals = { allow: 0, deny: 0, error: 0 };
  const series: Point[] = tRows
    .filter((r) => r.k === "s")
    .map((r) => ({ t: new Date(r.b!).toISOString(), allow: num(r.a), deny: num(r.d), error: num(r.e) }))
    .sort((x, z) => x.t.localeCompare(z.t));
  for (const p of series) {
    totals.allow += p.allow;
    totals.deny += p.deny;
    totals.error += p.error;
  }
  const byRank = (x: { rn: string | number }, z: { rn: string | number }) => Number(x.rn) - Number(z.rn);
  return {
    ...empty,
    series,
    totals,
    topDeniedTools: tRows
      .filter((r) => r.k === "t")
      .sort(byRank)
      .map((r) => ({ serverId: r.server_id!, tool: r.tool!, count: num(r.d) })),
    topUsers: aRows
      .filter((r) => r.kind === "user")
      .sort(byRank)
      .map((r) => ({ user: r.actor, count: num(r.n), denied: num(r.denied) })),
    topClients: aRows
      .filter((r) => r.kind === "client")
      .sort(byRank)
      .map((r) => ({ client: r.actor, count: num(r.n), denied: num(r.denied) })),
  };
}
