import "server-only";
import { sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { decisionCharts, type Charts } from "@/lib/decisions/charts";
import { decisionFilter, readableTenants } from "@/lib/decisions/query";
import { execRows } from "@/lib/decisions/rollups";

export const overviewHealthQuery = z.object({
  tenantId: z.string().max(100).optional().describe("Only this tenant (must be one the viewer may read); default every tenant the viewer may read"),
});

/** An agent counts as online when its last heartbeat is this recent (agents beat every 15 s). */
export const ONLINE_WINDOW_MS = 2 * 60_000;

export interface OverviewHealth {
  /** Decisions of the last 24 hours by hour (the audit charts' series, read from the rollups). */
  decisions: Pick<Charts, "bucket" | "from" | "to" | "series" | "totals">;
  /** Fleets and agents are global: null for a viewer who is neither owner nor global auditor. */
  agents: { total: number; online: number; behind: number; maxBehind: number; lastHeartbeatAt: string | null } | null;
  /** Fleets whose policies or scope mappings changed after their latest bundle (null as for agents). */
  unpublishedFleets: number | null;
  /** Catalogue entries whose latest version is not the approved one (status "changed"), not blocked. */
  toolsDrifted: number;
  /** Active vault entries whose next rotation date has passed. */
  vaultDue: number;
  /** OAuth clients waiting for an admin's approval. */
  clientsPending: number;
}

const tenantCond = (col: SQL, tenants: string[] | null): SQL =>
  tenants === null
    ? sql`true`
    : tenants.length === 0
      ? sql`false`
      : sql`${col} in (${sql.join(
          tenants.map((t) => sql`${t}`),
          sql`, `,
        )})`;

/**
 * Everything the Overview shows about operational health, scoped to what the
 * viewer may read: tenant-bound counts use the tenant of each loaded row
 * (server owner, vault entry, client); fleet and agent counts only for owners
 * and global auditors (the fleet pages are theirs). Five bounded aggregate
 * queries plus the decision charts (rollups), whatever the data size.
 *
 * "Unpublished" compares timestamps: a policy updated, or a scope mapping
 * saved, after the fleet's newest bundle. A deleted policy leaves no row and is
 * not counted (the fleet page's draft diff shows it).
 */
export async function overviewHealth(ctx: Ctx, q: z.infer<typeof overviewHealthQuery>, now = Date.now()): Promise<OverviewHealth> {
  const tenants = readableTenants(ctx, q.tenantId);
  const charts = await decisionCharts(ctx, decisionFilter.parse({ tenantId: q.tenantId }), now);
  const decisions = { bucket: charts.bucket, from: charts.from, to: charts.to, series: charts.series, totals: charts.totals };
  const nowIso = new Date(now).toISOString();

  const [counts] = await execRows<{ drifted: number; due: number; pending: number }>(
    ctx.db,
    sql`select
      (select count(*)::int from tools t join servers s on s.id = t.server_id
        where not t.blocked and t.approved_version_id is not null and t.approved_version_id <> t.latest_version_id
          and ${tenantCond(sql`s.tenant_id`, tenants)}) as drifted,
      (select count(*)::int from vault_entries v join servers s on s.id = v.server_id
        where v.status = 'active' and v.next_rotation_at is not null and v.next_rotation_at <= ${nowIso}::timestamptz
          and ${tenantCond(sql`coalesce(v.tenant_id, s.tenant_id)`, tenants)}) as due,
      (select count(*)::int from oauth_clients c where c.status = 'pending' and ${tenantCond(sql`c.tenant_id`, tenants)}) as pending`,
  );

  let agents: OverviewHealth["agents"] = null;
  let unpublishedFleets: number | null = null;
  if (seesAllTenants(ctx.actor) && !q.tenantId) {
    const since = new Date(now - ONLINE_WINDOW_MS).toISOString();
    const [a] = await execRows<{ total: number; online: number; behind: number; max_behind: number | null; last: string | Date | null }>(
      ctx.db,
      sql`select count(*)::int as total,
        (count(*) filter (where a.last_seen_at >= ${since}::timestamptz))::int as online,
        (count(*) filter (where f.active_revision is not null and coalesce(a.bundle_revision, 0) < f.active_revision))::int as behind,
        max(f.active_revision - coalesce(a.bundle_revision, 0)) filter (where f.active_revision is not null) as max_behind,
        max(a.last_seen_at) as last
      from agents a join fleets f on f.id = a.fleet_id where a.revoked_at is null`,
    );
    agents = {
      total: Number(a?.total ?? 0),
      online: Number(a?.online ?? 0),
      behind: Number(a?.behind ?? 0),
      maxBehind: Math.max(0, Number(a?.max_behind ?? 0)),
      lastHeartbeatAt: a?.last ? new Date(a.last).toISOString() : null,
    };
    const [u] = await execRows<{ n: number }>(
      ctx.db,
      sql`select count(*)::int as n from fleets f
        cross join lateral (select max(b.created_at) as at from bundles b where b.fleet_id = f.id) lb
        where exists (
          select 1 from fleet_servers fs join policies p on p.server_id = fs.server_id
            where fs.fleet_id = f.id and (lb.at is null or p.updated_at > lb.at)
          union all
          select 1 from fleet_servers fs join scope_mappings m on m.server_id = fs.server_id
            where fs.fleet_id = f.id and (lb.at is null or m.created_at > lb.at))`,
    );
    unpublishedFleets = Number(u?.n ?? 0);
  }

  return { decisions, agents, unpublishedFleets, toolsDrifted: Number(counts?.drifted ?? 0), vaultDue: Number(counts?.due ?? 0), clientsPending: Number(counts?.pending ?? 0) };
}
