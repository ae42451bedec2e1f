import canonicalize from "canonicalize";
import { and, eq, inArray, isNull, or, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { bundles, fleetServers, fleets, maskingRules, oauthClients, revocations, serverTenants, servers, tenants, vaultEntries } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import type { BundleContent, BundleCredential, BundleMaskingRule, BundleRevocation } from "@/lib/enforcement/bundle";
import { recordEvent } from "@/lib/trail/record";

/**
 * The live sections of a bundle: state an admin changes with immediate effect
 * (revocations, client approval, credential versions, masking), as opposed to
 * policies, which go through tests and an explicit publish.
 */
export interface LiveSections {
  revocations: BundleRevocation[];
  approvedClients: { tenantId: string; clientId: string }[];
  clientApproval: string[];
  credentials: BundleCredential[];
  masking: BundleMaskingRule[];
}

export const emptyLive = (): LiveSections => ({ revocations: [], approvedClients: [], clientApproval: [], credentials: [], masking: [] });

/** The tenants that may use these servers (owners and those granted access). */
async function tenantsOf(db: Db, serverIds: string[]): Promise<string[]> {
  if (!serverIds.length) return [];
  const [own, shared] = await Promise.all([
    db.select({ t: servers.tenantId }).from(servers).where(inArray(servers.id, serverIds)),
    db.select({ t: serverTenants.tenantId }).from(serverTenants).where(inArray(serverTenants.serverId, serverIds)),
  ]);
  return [...new Set([...own, ...shared].map((r) => r.t))].sort();
}

/** Reads the live sections for a set of servers (a fleet's), sorted so equal state gives equal content. */
export async function loadLiveSections(db: Db, serverIds: string[]): Promise<LiveSections> {
  if (!serverIds.length) return emptyLive();
  const tenantIds = await tenantsOf(db, serverIds);
  const [revRows, clientRows, tenantRows, entryRows, maskRows] = await Promise.all([
    db
      .select()
      .from(revocations)
      .where(and(inArray(revocations.tenantId, tenantIds), or(isNull(revocations.serverId), inArray(revocations.serverId, serverIds)))),
    db.select().from(oauthClients).where(and(inArray(oauthClients.tenantId, tenantIds), eq(oauthClients.status, "approved"))),
    db.select({ id: tenants.id }).from(tenants).where(and(inArray(tenants.id, tenantIds), eq(tenants.requireClientApproval, true))),
    db.select().from(vaultEntries).where(and(inArray(vaultEntries.serverId, serverIds), eq(vaultEntries.status, "active"))),
    db.select().from(maskingRules).where(inArray(maskingRules.serverId, serverIds)),
  ]);
  // Only the latest cut-off per (tenant, user, client, server) matters: a later one rejects everything an earlier one did.
  const latest = new Map<string, BundleRevocation>();
  for (const r of revRows) {
    const rev: BundleRevocation = { tenantId: r.tenantId, ...(r.userId ? { user: r.userId } : {}), ...(r.clientId ? { client: r.clientId } : {}), ...(r.serverId ? { serverId: r.serverId } : {}), before: r.before.toISOString() };
    const key = `${r.tenantId}\u0000${r.userId ?? ""}\u0000${r.clientId ?? ""}\u0000${r.serverId ?? ""}`;
    const prev = latest.get(key);
    if (!prev || prev.before < rev.before) latest.set(key, rev);
  }
  const byJson = <T>(a: T, b: T) => (canonicalize(a) ?? "").localeCompare(canonicalize(b) ?? "");
  return {
    revocations: [...latest.values()].sort(byJson),
    approvedClients: clientRows.map((c) => ({ tenantId: c.tenantId, clientId: c.clientId })).sort(byJson),
    clientApproval: tenantRows.map((t) => t.id).sort(),
    credentials: entryRows
      .filter((e) => e.tenantId === null || tenantIds.includes(e.tenantId))
      .map((e) => ({ entryId: e.id, serverId: e.serverId, tenantId: e.tenantId, kind: e.kind, placement: e.placement, version: e.currentVersion }))
      .sort(byJson),
    masking: maskRows.map((m) => ({ serverId: m.serverId, tool: m.tool, paths: [...m.paths], mode: m.mode })).sort(byJson),
  };
}

/** Sets the live sections of bundle content (a copy). */
export function withLive(content: BundleContent, live: LiveSections): BundleContent {
  return { ...content, ...live };
}

function liveOf(c: BundleContent): LiveSections {
  return { revocations: c.revocations ?? [], approvedClients: c.approvedClients ?? [], clientApproval: c.clientApproval ?? [], credentials: c.credentials ?? [], masking: c.masking ?? [] };
}

export type InsertRevision = (db: Db, fleet: typeof fleets.$inferSelect, content: BundleContent, extra: { note: string; createdBy: string }) => Promise<{ revision: number }>;

/**
 * Republishes the live bundle of every fleet serving one of `serverIds` (all
 * fleets when null) with fresh live sections, as a new signed revision, when
 * they changed. Call it inside the transaction that made the change: the
 * revision commits with it, and pg_notify wakes every agent's long poll on
 * commit. Fleets with nothing published are left alone (they have nothing to
 * enforce yet; the first publish includes the live sections).
 */
export async function republishLive(
  db: Db,
  actor: Actor | "system",
  serverIds: string[] | null,
  why: string,
  insert: InsertRevision,
): Promise<{ fleetId: string; revision: number }[]> {
  const fleetIds = serverIds
    ? [...new Set((await (serverIds.length ? db.select({ f: fleetServers.fleetId }).from(fleetServers).where(inArray(fleetServers.serverId, serverIds)) : Promise.resolve([]))).map((r) => r.f))]
    : (await db.select({ id: fleets.id }).from(fleets)).map((r) => r.id);
  const out: { fleetId: string; revision: number }[] = [];
  for (const fleetId of fleetIds.sort()) {
    const [fleet] = await db.select().from(fleets).where(eq(fleets.id, fleetId)).for("update");
    if (!fleet || fleet.activeRevision === null) continue;
    const [active] = await db.select().from(bundles).where(and(eq(bundles.fleetId, fleet.id), eq(bundles.revision, fleet.activeRevision)));
    if (!active) continue;
    const prev = active.content as unknown as BundleContent;
    const ids = (await db.select({ id: fleetServers.serverId }).from(fleetServers).where(eq(fleetServers.fleetId, fleet.id))).map((r) => r.id);
    const live = await loadLiveSections(db, ids);
    if (canonicalize(liveOf(prev)) === canonicalize(live)) continue;
    const [{ max }] = (await db.select({ max: sql<number | null>`max(${bundles.revision})` }).from(bundles).where(eq(bundles.fleetId, fleet.id))) as [{ max: number | null }];
    const revision = Number(max ?? 0) + 1;
    const content = withLive({ ...prev, manifest: { ...prev.manifest, revision, parentRevision: fleet.activeRevision, createdAt: new Date().toISOString() } }, live);
    await insert(db, fleet, content, { note: why, createdBy: actor === "system" ? "system" : actor.label });
    await recordEvent(db, actor, { action: "bundle.republish", targetType: "fleet", targetId: fleet.id, tenantId: null, before: { revision: fleet.activeRevision }, after: { revision, reason: why } });
    out.push({ fleetId: fleet.id, revision });
  }
  return out;
}
