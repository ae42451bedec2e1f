import "server-only";
import { and, asc, eq, isNull } from "drizzle-orm";
import { agents, fleets, fleetServers } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { ONLINE_WINDOW_MS } from "@/lib/overview/health";
import { loadEntry, publicEntry, versionsOf } from "./service";

/*
 * Which agents use which version of a vault entry: every agent (not revoked)
 * of a fleet that serves the entry's server, with the version it reported
 * holding in its last heartbeat (lib/enforcement/heartbeat.ts `credentials`).
 * An agent that does not report versions (older than the field) shows as
 * unknown; one that reports but holds none of this entry, as not held.
 * Readable by whoever may read the entry (its own tenant decides, 404 else).
 */

export const MAX_AGENTS_LISTED = 500;

export type AgentUse = { state: "unknown" } | { state: "not_held" } | { state: "holds"; version: number; versionStatus: "current" | "grace" | "retired" | "scheduled" | "unknown" };

export async function entryAgents(ctx: Ctx, entryId: string, now = new Date()) {
  const { entry } = await loadEntry(ctx, entryId, false);
  const [rows, versions] = await Promise.all([
    ctx.db
      .select({ agent: agents, fleetName: fleets.name })
      .from(agents)
      .innerJoin(fleets, eq(fleets.id, agents.fleetId))
      .innerJoin(fleetServers, and(eq(fleetServers.fleetId, agents.fleetId), eq(fleetServers.serverId, entry.serverId)))
      .where(isNull(agents.revokedAt))
      .orderBy(asc(fleets.name), asc(agents.name), asc(agents.id))
      .limit(MAX_AGENTS_LISTED + 1),
    versionsOf(ctx.db, entry.id),
  ]);
  // Statuses as the entry page shows them (a grace version past its end is retired).
  const status = new Map(publicEntry(entry, versions, {}, now).versions.map((v) => [v.version, v.status]));
  const items = rows.slice(0, MAX_AGENTS_LISTED).map(({ agent: a, fleetName }) => {
    const reported = a.credentialVersions;
    const version = reported ? reported[entry.id] : undefined;
    const use: AgentUse = !reported ? { state: "unknown" } : version === undefined ? { state: "not_held" } : { state: "holds", version, versionStatus: status.get(version) ?? "unknown" };
    return {
      agentId: a.id,
      name: a.name,
      fleetId: a.fleetId,
      fleetName,
      lastSeenAt: a.lastSeenAt?.toISOString() ?? null,
      online: !!a.lastSeenAt && now.getTime() - a.lastSeenAt.getTime() <= ONLINE_WINDOW_MS,
      agentVersion: a.version,
      bundleRevision: a.bundleRevision,
      use,
    };
  });
  const byVersion: Record<string, number> = {};
  for (const i of items) {
    const key = i.use.state === "holds" ? String(i.use.version) : i.use.state;
    byVersion[key] = (byVersion[key] ?? 0) + 1;
  }
  return { entryId: entry.id, currentVersion: entry.currentVersion, items, truncated: rows.length > MAX_AGENTS_LISTED, byVersion };
}
export type EntryAgents = Awaited<ReturnType<typeof entryAgents>>;
