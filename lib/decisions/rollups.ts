import "server-only";
import { sql, type SQL } from "drizzle-orm";
import type { Db } from "@/db/client";

/**
 * Reads of the decision rollups (issue 15). The four tables are written by
 * the AFTER INSERT statement trigger on `decisions` (migrations 0009, 0019, 0025)
 * from the rows an INSERT actually stored, in the same transaction: a
 * duplicate skipped by ON CONFLICT DO NOTHING is never counted, and every
 * insert path (ingest, tests, bulk loads) keeps them exact. Retention deletes
 * rollup buckets older than the oldest kept partition in the transaction that
 * drops it.
 *
 * - decision_rollups: grain 'hour' | 'day' × tenant × server × tool, counts per outcome, last_at
 * - decision_actor_rollups: grain × tenant × kind ('user' | 'client') × actor, counts, last_at
 * - decision_usage: day × tenant × server × tool × user × client × method × scope set, counts,
 *   last_at, last_allow_at, last_id, last_allow_id (least-privilege findings, lib/findings/usage.ts)
 * - decision_policy_rollups: grain × tenant × server × determining policy id, counts (group by policy): a
 *   decision counts once per distinct policy id in `determining`, and under a null policy_id when it has none
 *
 * A missing tenant, server, tool, user or client is stored as '' (keys are NOT
 * NULL): a decision without a tenant (a gate refusal before one was known) is
 * counted under ''. The actor rollups keep no row for a missing user or client.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

const rowsOf = <T>(r: unknown): T[] => (Array.isArray(r) ? r : ((r as { rows?: T[] }).rows ?? [])) as T[];
export const execRows = async <T>(db: Db, q: SQL): Promise<T[]> => rowsOf<T>(await db.execute(q));

const floorTo = (t: number, unit: number) => Math.floor(t / unit) * unit;
const ceilTo = (t: number, unit: number) => Math.ceil(t / unit) * unit;

/** A half-open time range [from, to) in ms, read from one source. */
export interface Span {
  source: "day" | "hour" | "raw";
  from: number;
  to: number;
}

/**
 * Splits [from, to) into what each source answers exactly: whole UTC days
 * from the day rollups (when `days`), whole hours from the hour rollups, and
 * the partial hours at both ends from the raw rows. Empty spans are left out.
 */
export function spansOf(from: number, to: number, days: boolean): Span[] {
  const out: Span[] = [];
  const add = (source: Span["source"], a: number, b: number) => {
    if (a < b) out.push({ source, from: a, to: b });
  };
  const h0 = ceilTo(from, HOUR_MS);
  const h1 = floorTo(to, HOUR_MS);
  if (h0 >= h1) {
    add("raw", from, to);
    return out;
  }
  add("raw", from, h0);
  const d0 = ceilTo(from, DAY_MS);
  const d1 = floorTo(to, DAY_MS);
  if (days && d0 < d1) {
    add("hour", h0, d0);
    add("day", d0, d1);
    add("hour", d1, h1);
  } else add("hour", h0, h1);
  add("raw", h1, to);
  return out;
}

/** Tenant scoping of a rollup read: null = every tenant (and the rows without one, stored as ''). */
export const tenantCond = (col: SQL, tenants: string[] | null): SQL =>
  tenants === null
    ? sql`true`
    : tenants.length === 1
      ? sql`${col} = ${tenants[0]!}`
      : sql`${col} in (${sql.join(
          tenants.map((t) => sql`${t}`),
          sql`, `,
        )})`;

const iso = (ms: number) => new Date(ms).toISOString();

// ---------------------------------------------------------------- usage (least-privilege findings)

export interface ToolUsage {
  serverId: string;
  tool: string | null;
  user: string | null;
  client: string | null;
  allow: number;
  deny: number;
  error: number;
  /** The last decision of any outcome in the window. */
  lastAt: string;
  /** The last allowed call in the window (null if every call was refused). */
  lastAllowAt: string | null;
}

/**
 * Per (server, tool, user, client) of one tenant: counts by outcome and the
 * last (allowed) use over [since, until). Read from decision_usage (daily
 * buckets): `since` is rounded down and `until` up to UTC day boundaries, so
 * the window covers whole days. No authorization here: the caller has
 * resolved the tenant from rows it is allowed to read. `tenantId: null`
 * answers the decisions without a tenant.
 */
export async function usageByTool(db: Db, q: { tenantId: string | null; since: Date; until?: Date; serverId?: string }): Promise<ToolUsage[]> {
  const since = floorTo(q.since.getTime(), DAY_MS);
  const until = q.until ? ceilTo(q.until.getTime(), DAY_MS) : Number.MAX_SAFE_INTEGER;
  type R = { server_id: string; tool: string; user_id: string; client_id: string; allow: string; deny: string; error: string; last_at: Date | string; last_allow_at: Date | string | null };
  const rows = await execRows<R>(
    db,
    sql`select server_id, tool, user_id, client_id, sum(allow)::text as allow, sum(deny)::text as deny, sum(error)::text as error,
               max(last_at) as last_at, max(last_allow_at) as last_allow_at
        from decision_usage
        where tenant_id = ${q.tenantId ?? ""} and day >= ${iso(since)}::timestamptz
          ${until < Number.MAX_SAFE_INTEGER ? sql`and day < ${iso(until)}::timestamptz` : sql``}
          ${q.serverId ? sql`and server_id = ${q.serverId}` : sql``}
        group by server_id, tool, user_id, client_id`,
  );
  const nul = (s: string) => (s === "" ? null : s);
  const isoOf = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());
  return rows.map((r) => ({
    serverId: r.server_id,
    tool: nul(r.tool),
    user: nul(r.user_id),
    client: nul(r.client_id),
    allow: Number(r.allow),
    deny: Number(r.deny),
    error: Number(r.error),
    lastAt: isoOf(r.last_at)!,
    lastAllowAt: isoOf(r.last_allow_at),
  }));
}

export interface ServerToolUsage {
  tenantId: string | null;
  serverId: string;
  tool: string | null;
  allow: number;
  deny: number;
  error: number;
  lastAt: string;
}

/**
 * Per (tenant, server, tool): counts by outcome and last decision over
 * [since, until), from the daily rollups (whole UTC days, as usageByTool).
 * `tenantIds: null` = every tenant. No authorization here (see usageByTool).
 */
export async function usageByServerTool(db: Db, q: { tenantIds: string[] | null; since: Date; until?: Date }): Promise<ServerToolUsage[]> {
  const since = floorTo(q.since.getTime(), DAY_MS);
  const until = q.until ? ceilTo(q.until.getTime(), DAY_MS) : null;
  type R = { tenant_id: string; server_id: string; tool: string; allow: string; deny: string; error: string; last_at: Date | string };
  const rows = await execRows<R>(
    db,
    sql`select tenant_id, server_id, tool, sum(allow)::text as allow, sum(deny)::text as deny, sum(error)::text as error, max(last_at) as last_at
        from decision_rollups
        where grain = 'day' and bucket >= ${iso(since)}::timestamptz ${until !== null ? sql`and bucket < ${iso(until)}::timestamptz` : sql``}
          and ${tenantCond(sql`tenant_id`, q.tenantIds)}
        group by tenant_id, server_id, tool`,
  );
  return rows.map((r) => ({
    tenantId: r.tenant_id === "" ? null : r.tenant_id,
    serverId: r.server_id,
    tool: r.tool === "" ? null : r.tool,
    allow: Number(r.allow),
    deny: Number(r.deny),
    error: Number(r.error),
    lastAt: new Date(r.last_at).toISOString(),
  }));
}

// ---------------------------------------------------------------- retention

/** Deletes rollup buckets before `cutoff` (a UTC day boundary: the first kept partition). Same transaction as the drop. */
export async function deleteRollupsBefore(db: Db, cutoff: number): Promise<void> {
  const c = iso(cutoff);
  await db.execute(sql`delete from decision_rollups where bucket < ${c}::timestamptz`);
  await db.execute(sql`delete from decision_actor_rollups where bucket < ${c}::timestamptz`);
  await db.execute(sql`delete from decision_usage where day < ${c}::timestamptz`);
  await db.execute(sql`delete from decision_policy_rollups where bucket < ${c}::timestamptz`);
}

// ---------------------------------------------------------------- rebuild (bulk loads, repair)

/**
 * The trigger's statement (migration 0025; 0019 without the policy rollups) over the given source of
 * decision rows: the rows are aggregated once per hour at the finest key (the determining policy set
 * included), and the four tables are written from that aggregate.
 */
export const rollupStatement = (source: string) => `
  WITH f AS MATERIALIZED (
    SELECT date_trunc('hour', n.at, 'UTC') AS hour, coalesce(n.tenant_id, '') AS tenant_id, coalesce(n.server_id, '') AS server_id, coalesce(n.tool, '') AS tool,
           n.user_id, n.client_id, n.method, n.scopes, n.determining,
           count(*) FILTER (WHERE n.outcome = 'allow') AS allow, count(*) FILTER (WHERE n.outcome = 'deny') AS deny, count(*) FILTER (WHERE n.outcome = 'error') AS error,
           max(n.at) AS last_at, max(n.at) FILTER (WHERE n.outcome = 'allow') AS last_allow_at, max(n.id) AS last_id, max(n.id) FILTER (WHERE n.outcome = 'allow') AS last_allow_id
    FROM ${source} n
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
  ), p AS (
    INSERT INTO decision_policy_rollups AS r (grain, bucket, tenant_id, server_id, policy_id, allow, deny, error)
    SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, f.server_id, k.policy_id,
           sum(f.allow), sum(f.deny), sum(f.error)
    FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
      CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(f.determining) = 'array' THEN f.determining ELSE '[]' END) e
                          UNION ALL SELECT NULL WHERE jsonb_typeof(f.determining) <> 'array' OR f.determining = '[]') k(policy_id)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (grain, bucket, tenant_id, server_id, policy_id) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error
  ), u AS (
    INSERT INTO decision_usage AS r (day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id)
    SELECT date_trunc('day', f.hour, 'UTC'), f.tenant_id, f.server_id, f.tool, coalesce(f.user_id, ''), coalesce(f.client_id, ''), f.method, f.scopes,
           sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at), max(f.last_allow_at), max(f.last_id), max(f.last_allow_id)
    FROM f
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (day, tenant_id, server_id, tool, user_id, client_id, method, scopes) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at),
          last_allow_at = greatest(r.last_allow_at, excluded.last_allow_at), last_id = greatest(r.last_id, excluded.last_id), last_allow_id = greatest(r.last_allow_id, excluded.last_allow_id)
  ), t AS (
    INSERT INTO decision_rollups AS r (grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at)
    SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, f.server_id, f.tool,
           sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at)
    FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (grain, bucket, tenant_id, server_id, tool) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at)
  )
  INSERT INTO decision_actor_rollups AS r (grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at)
  SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, k.kind, k.actor,
         sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at)
  FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain) CROSS JOIN LATERAL (VALUES ('user', f.user_id), ('client', f.client_id)) k(kind, actor)
  WHERE k.actor IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, kind, actor) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at)`;

/**
 * Recomputes the four rollup tables from the decision rows, in one
 * transaction that locks `decisions` against inserts meanwhile (SHARE mode),
 * so no row is missed or counted twice. For a bulk load done with the
 * trigger disabled (`alter table decisions disable trigger decisions_rollup`,
 * as bench/query.ts does) or a repair; ingestion never needs it.
 */
export async function rebuildRollups(db: Db, opts: { workMem?: string } = {}): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`lock table decisions in share mode`);
    if (opts.workMem && /^\d+(kB|MB|GB)$/.test(opts.workMem)) await tx.execute(sql.raw(`set local work_mem = '${opts.workMem}'`));
    await tx.execute(sql`delete from decision_rollups`);
    await tx.execute(sql`delete from decision_actor_rollups`);
    await tx.execute(sql`delete from decision_usage`);
    await tx.execute(sql`delete from decision_policy_rollups`);
    await tx.execute(sql.raw(rollupStatement("decisions")));
  });
}
