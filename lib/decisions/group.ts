import "server-only";
import { and, sql } from "drizzle-orm";
import { z } from "zod";
import { decisions } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { chartsFromRollups, decisionCharts } from "./charts";
import { resolveNames, type Names } from "./names";
import { decisionFilter, filterConditions } from "./query";
import { execRows } from "./rollups";

export const GROUP_BY = ["tool", "user", "client", "policy", "outcome"] as const;
export type GroupBy = (typeof GROUP_BY)[number];
/** At most this many groups come back (largest first); `others` counts the rest. */
export const GROUPS_MAX = 50;

/** Group-by query: the search filter plus what to group on. */
export const decisionGroupQuery = decisionFilter.extend({
  by: z.enum(GROUP_BY).describe("Group decisions by tool, user, client, determining policy or outcome"),
  limit: z.coerce.number().int().min(1).max(GROUPS_MAX).default(20),
});
export type DecisionGroupQuery = z.infer<typeof decisionGroupQuery>;

export interface Group {
  /** The tool, user, client, policy id or outcome; null for decisions without one (e.g. tools/list has no tool, a default deny no policy). */
  key: string | null;
  /** The policy's name (by: policy) when the viewer may read it. */
  name?: string;
  count: number;
  denied: number;
}
export interface Groups {
  by: GroupBy;
  groups: Group[];
  /** Decisions in groups beyond `limit`. For by=policy a decision counts once per determining policy. */
  others: number;
  total: number;
  source: "rollups" | "raw";
}

const COL = {
  tool: sql`${decisions.tool}`,
  user: sql`${decisions.userId}`,
  client: sql`${decisions.clientId}`,
  outcome: sql`${decisions.outcome}`,
} as const;

/**
 * Counts of the filter's decisions per group, largest first, under the same
 * tenant scoping as the search. By outcome, the counts are the charts'
 * totals (read from the rollups when they answer the filter exactly, see
 * chartsFromRollups); the other groupings scan the filtered rows once
 * (GROUP BY in SQL, at most `limit` groups back). By policy, a decision
 * counts once for each determining policy, and once under null when none
 * determined it.
 */
export async function groupDecisions(ctx: Ctx, q: DecisionGroupQuery, now = Date.now()): Promise<Groups> {
  const limit = Math.min(q.limit ?? 20, GROUPS_MAX);
  if (q.by === "outcome") {
    const c = await decisionCharts(ctx, q, now);
    const groups = (["allow", "deny", "error"] as const)
      .map((o) => ({ key: o, count: c.totals[o], denied: o === "deny" ? c.totals.deny : 0 }))
      .filter((g) => g.count > 0)
      .sort((a, z) => z.count - a.count);
    const total = groups.reduce((n, g) => n + g.count, 0);
    return { by: q.by, groups, others: 0, total, source: chartsFromRollups(q, c.bucket) ? "rollups" : "raw" };
  }
  const conds = filterConditions(ctx, q, { now });
  if (!conds) return { by: q.by, groups: [], others: 0, total: 0, source: "raw" };
  const key = q.by === "policy" ? sql`k.key` : COL[q.by];
  const from = q.by === "policy" ? sql`${decisions} left join lateral jsonb_array_elements_text(coalesce(${decisions.determining}, '[]'::jsonb)) as k(key) on true` : sql`${decisions}`;
  const rows = await execRows<{ key: string | null; n: string | number; denied: string | number; rn: string | number; total: string | number }>(
    ctx.db,
    sql`select * from (
          select g.*, row_number() over (order by n desc, key nulls last) as rn, sum(n) over () as total
          from (select ${key} as key, count(*) as n, count(*) filter (where ${decisions.outcome} = 'deny') as denied
                from ${from} where ${and(...conds)} group by 1) g
        ) x where rn <= ${limit} order by rn`,
  );
  const total = rows.length ? Number(rows[0]!.total) : 0;
  let names: Names | null = null;
  if (q.by === "policy") names = await resolveNames(ctx, { policy: rows.map((r) => r.key) });
  const groups: Group[] = rows.map((r) => {
    const g: Group = { key: r.key, count: Number(r.n), denied: Number(r.denied) };
    const name = r.key && names?.policy[r.key];
    if (name) g.name = name;
    return g;
  });
  return { by: q.by, groups, others: total - groups.reduce((n, g) => n + g.count, 0), total, source: "raw" };
}
