import "server-only";
import { and, sql } from "drizzle-orm";
import { decisions } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { decisionFilter, filterConditions, windowOf, type DecisionFilter } from "./query";

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

const TOP = 10;

/**
 * Decisions over time by outcome, top denied tools, top users and top
 * clients, under the same filter and tenant scoping as the search.
 */
export async function decisionCharts(ctx: Ctx, f: DecisionFilter, now = Date.now()) {
  const w = windowOf(f, false, now);
  const bucket = bucketFor(w.from, w.to!);
  const conds = filterConditions(ctx, f, { now });
  const empty = { bucket, from: w.from.toISOString(), to: w.to!.toISOString(), series: [], topDeniedTools: [], topUsers: [], topClients: [], totals: { allow: 0, deny: 0, error: 0 } };
  if (!conds) return empty;
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
      select g.*, row_number() over (partition by k order by case when k = 't' then denied else n end desc, coalesce(tool, user_id, client_id)) as rn
      from g
      where k = 's' or (k = 't' and tool is not null and denied > 0) or (k = 'u' and user_id is not null) or (k = 'c' and client_id is not null)
    ) x
    where k = 's' or rn <= ${TOP}`);
  type Row = { k: "s" | "t" | "u" | "c"; b: string | number | null; outcome: "allow" | "deny" | "error" | null; server_id: string | null; tool: string | null; user_id: string | null; client_id: string | null; n: number; denied: number; rn: number | string };
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
