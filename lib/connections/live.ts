import { and, gt, inArray } from "drizzle-orm";
import type { Db } from "@/db/client";
import { upstreamConnections } from "@/db/schema";
import type { BundleConnectionCut } from "@/lib/enforcement/bundle";

/** An ended connection's cut stays in the live section this long (an agent holds a user's token MAX_AGENT_TOKEN_TTL_SECONDS at most). */
export const CUT_RETENTION_MS = 60 * 60_000;

/**
 * The live section `connectionCuts` (lib/bundles/live.ts): brokered per-user
 * OAuth connections of these servers and tenants that ended (disconnect,
 * revocation, failed refresh) within CUT_RETENTION_MS, latest end per
 * (tenant, server, user). An agent drops a user's access token fetched under
 * another cut (agent/connections.ts).
 */
export async function liveConnectionCuts(db: Db, serverIds: string[], tenantIds: string[], now = new Date()): Promise<BundleConnectionCut[]> {
  if (!serverIds.length || !tenantIds.length) return [];
  const rows = await db
    .select({ tenantId: upstreamConnections.tenantId, serverId: upstreamConnections.serverId, user: upstreamConnections.userKey, endedAt: upstreamConnections.endedAt })
    .from(upstreamConnections)
    .where(and(inArray(upstreamConnections.serverId, serverIds), inArray(upstreamConnections.tenantId, tenantIds), gt(upstreamConnections.endedAt, new Date(now.getTime() - CUT_RETENTION_MS))));
  return rows
    .map((r) => ({ tenantId: r.tenantId, serverId: r.serverId, user: r.user, before: r.endedAt!.toISOString() }))
    .sort((a, b) => `${a.tenantId}\u0000${a.serverId}\u0000${a.user}`.localeCompare(`${b.tenantId}\u0000${b.serverId}\u0000${b.user}`));
}
