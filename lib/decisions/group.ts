import "server-only";
import { and, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { decisions } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { chartsFromRollups, decisionCharts, wholeBuckets, type Bucket } from "./charts";
import { resolveNames, type Names } from "./names";
import { decisionFilter, filterConditions, readableTenants, windowOf } from "./query";
import { execRows, spansOf, tenantCond } from "./rollups";

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
  /** Decisions in groups beyond `limit`. For by=policy a decision counts once per distinct determining policy. */
  others: number;
  total: number;
  source: "rollups" | "raw";
  /**
   * The window the counts cover, [from, to) in ISO 8601 (UTC): the filter's window widened to whole
   * UTC buckets (`bucket`: minute up to 2 h, hour up to 3 days, else day), the charts' window.
   */
  from: string;
  to: string;
  bucket: Bucket;
}

const COL = {
  // A tools/call without a tool name ('' or null) is one group, null, on both paths (the rollups keep both as '').
  tool: sql`nullif(${decisions.tool}, '')`,
  user: sql`${decisions.userId}`,
  client: sql`${decisions.clientId}`,
  outcome: sql`${decisions.outcome}`,
} as const;

/**
 * Whether the rollups answer a group-by exactly: by tool, decision_rollups
 * (tenant × server × tool) with filters on tenant, server, tool and outcome;
 * by user or client, decision_actor_rollups (tenant × actor) with filters on
 * tenant, outcome and that same actor; by policy, decision_policy_rollups
 * (tenant × server × determining policy) with filters on tenant, server and
 * outcome. Free text, method, a policy filter, bundle revision and any other
 * filter read the raw rows.
 */
export function groupFromRollups(q: DecisionGroupQuery): boolean {
  if (q.q || q.method || q.policyId || q.bundleRevision !== undefined) return false;
  if (q.by === "tool") return !q.user && !q.client;
  if (q.by === "policy") return !q.tool && !q.user && !q.client;
  if (q.by === "user") return !q.serverId && !q.tool && !q.client;
  if (q.by === "client") return !q.serverId && !q.tool && !q.user;
  return false;
}

type GroupRow = { key: string | null; n: string | number; denied: string | number; rn: string | number; total: string | number };

/**
 * Per-key counts of the raw rows matching `conds`. By policy, a decision counts once per distinct policy id in
 * `determining` and once under null when it has none (as decision_policy_rollups counts it).
 */
function rawGroups(by: Exclude<GroupBy, "outcome">, conds: SQL[]): SQL {
  const counts = sql`count(*) as n, count(*) filter (where ${decisions.outcome} = 'deny') as denied`;
  if (by !== "policy") return sql`select ${COL[by]} as key, ${counts} from ${decisions} where ${and(...conds)} group by 1`;
  return sql`select k.key, ${counts} from ${decisions}
             left join lateral (select distinct e from jsonb_array_elements_text(coalesce(${decisions.determining}, '[]'::jsonb)) e) as k(key) on true
             where ${and(...conds)} group by 1`;
}

/** The top `limit` groups of a per-key source (key, n, denied), largest first, with the total over every group. */
const topGroups = (source: SQL, limit: number) => sql`
  select * from (
    select g.*, row_number() over (order by n desc, key nulls last) as rn, sum(n) over () as total
    from (select key, sum(n) as n, sum(denied) as denied from (${source}) u group by key having sum(n) > 0) g
  ) x where rn <= ${limit} order by rn`;

/**
 * Per-key counts from the rollups over the window's whole hours and days,
 * plus the raw rows of the partial hours at both ends (spansOf): the answer a
 * scan of the raw rows gives. By user or client, the decisions without one
 * (null) are the window's total minus the actor rows (the actor rollups keep
 * no row for a missing actor). The window groupDecisions passes is widened to
 * whole buckets: beyond 3 days it is whole days (day rows only), up to 3 days
 * whole hours (hour rows, and day rows for the whole days inside); only a
 * window up to 2 h (whole minutes) has partial hours, read from the raw rows.
 */
function rollupSource(ctx: Ctx, q: DecisionGroupQuery, by: "tool" | "user" | "client" | "policy", now: number): SQL {
  const tenants = readableTenants(ctx, q.tenantId);
  const w = windowOf(q, false, now);
  const spans = spansOf(w.from.getTime(), w.to!.getTime(), true);
  const iso = (ms: number) => new Date(ms).toISOString();
  // Under an outcome filter only that outcome counts, and denials only when it is deny (as in the raw rows).
  const n = q.outcome ? sql.raw(q.outcome === "error" ? `"error"` : q.outcome) : sql`allow + deny + "error"`;
  const denied = !q.outcome || q.outcome === "deny" ? sql`deny` : sql`0`;
  const raw: SQL[] = [];
  const rolled: SQL[] = [];
  const totals: SQL[] = [];
  const actor = by === "user" ? q.user : by === "client" ? q.client : undefined;
  for (const s of spans) {
    if (s.source === "raw") {
      const conds = filterConditions(ctx, { ...q, from: iso(s.from), to: iso(s.to) }, { now })!;
      raw.push(rawGroups(by, conds));
      continue;
    }
    const range = sql`grain = ${s.source} and bucket >= ${iso(s.from)}::timestamptz and bucket < ${iso(s.to)}::timestamptz and ${tenantCond(sql`tenant_id`, tenants)}`;
    if (by === "tool") {
      rolled.push(sql`select nullif(tool, '') as key, sum(${n}) as n, sum(${denied}) as denied from decision_rollups
                      where ${range} ${q.serverId ? sql`and server_id = ${q.serverId}` : sql``} ${q.tool ? sql`and tool = ${q.tool}` : sql``} group by 1`);
      continue;
    }
    if (by === "policy") {
      rolled.push(sql`select policy_id as key, sum(${n}) as n, sum(${denied}) as denied from decision_policy_rollups
                      where ${range} ${q.serverId ? sql`and server_id = ${q.serverId}` : sql``} group by 1`);
      continue;
    }
    rolled.push(sql`select actor as key, sum(${n}) as n, sum(${denied}) as denied from decision_actor_rollups
                    where ${range} and kind = ${by} ${actor ? sql`and actor = ${actor}` : sql``} group by 1`);
    if (!actor) totals.push(sql`select sum(${n}) as n, sum(${denied}) as denied from decision_rollups where ${range}`);
  }
  const union = (parts: SQL[]) => sql.join(parts, sql` union all `);
  if (!rolled.length) return union(raw);
  // The actor rows are read once; the null group is the rollups' total minus them.
  const nulls = totals.length
    ? sql`union all select null::text as key, (select coalesce(sum(n), 0) from t) - (select coalesce(sum(n), 0) from r), (select coalesce(sum(denied), 0) from t) - (select coalesce(sum(denied), 0) from r)`
    : sql``;
  return sql`with r as (${union(rolled)})${totals.length ? sql`, t as (${union(totals)})` : sql``}
             select key, n, denied from r ${nulls} ${raw.length ? sql`union all ${union(raw)}` : sql``}`;
}

/**
 * Counts of the filter's decisions per group, largest first, under the same
 * tenant scoping as the search, over the filter's window widened to whole
 * UTC buckets as the charts widen theirs (wholeBuckets; the answer's from, to
 * and bucket say which): a window longer than 3 days is whole days, which the
 * day rollups answer alone (no hour rows for partial days, no raw rows for
 * partial hours). By outcome, the counts are the charts'
 * totals (read from the rollups when they answer the filter exactly, see
 * chartsFromRollups). By tool, user, client or policy, from the rollups when
 * they answer the filter (groupFromRollups), else one scan of the filtered
 * rows (GROUP BY in SQL, at most `limit` groups back); `raw: true` forces the
 * scan (tests). By policy, a decision counts once for each distinct
 * determining policy, and once under null when none determined it.
 */
export async function groupDecisions(ctx: Ctx, q0: DecisionGroupQuery, now = Date.now(), opts: { raw?: boolean; exactWindow?: boolean } = {}): Promise<Groups> {
  const limit = Math.min(q0.limit ?? 20, GROUPS_MAX);
  const wide = wholeBuckets(q0, now);
  // exactWindow (bench/query.ts only): the filter's window as given, hour rows and raw rows at its edges (the code before).
  const exact = opts.exactWindow && q0.by !== "outcome" ? windowOf(q0, false, now) : null;
  const q = exact ? { ...q0, from: exact.from.toISOString(), to: exact.to!.toISOString() } : wide.f;
  const window = { from: q.from!, to: q.to!, bucket: wide.bucket };
  if (q.by === "outcome") {
    // The charts widen the filter's window the same way (wholeBuckets): their totals cover `window`.
    const c = await decisionCharts(ctx, q0, now, { raw: opts.raw });
    const groups = (["allow", "deny", "error"] as const)
      .map((o) => ({ key: o, count: c.totals[o], denied: o === "deny" ? c.totals.deny : 0 }))
      .filter((g) => g.count > 0)
      .sort((a, z) => z.count - a.count);
    const total = groups.reduce((n, g) => n + g.count, 0);
    return { by: q.by, groups, others: 0, total, source: !opts.raw && chartsFromRollups(q, c.bucket) ? "rollups" : "raw", ...window };
  }
  const conds = filterConditions(ctx, q, { now });
  if (!conds) return { by: q.by, groups: [], others: 0, total: 0, source: "raw", ...window };
  const fromRollups = !opts.raw && groupFromRollups(q);
  const source = fromRollups ? rollupSource(ctx, q, q.by, now) : rawGroups(q.by, conds);
  const rows = await execRows<GroupRow>(ctx.db, topGroups(source, limit));
  const total = rows.length ? Number(rows[0]!.total) : 0;
  let names: Names | null = null;
  if (q.by === "policy") names = await resolveNames(ctx, { policy: rows.map((r) => r.key) });
  const groups: Group[] = rows.map((r) => {
    const g: Group = { key: r.key, count: Number(r.n), denied: Number(r.denied) };
    const name = r.key && names?.policy[r.key];
    if (name) g.name = name;
    return g;
  });
  return { by: q.by, groups, others: total - groups.reduce((n, g) => n + g.count, 0), total, source: fromRollups ? "rollups" : "raw", ...window };
}
