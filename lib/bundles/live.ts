import canonicalize from "canonicalize";
import { and, eq, inArray, isNull, or, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { bundles, fleetServers, fleets, maskingRules, oauthClients, revocations, serverTenants, servers, tenants, vaultEntries } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import { liveApprovals } from "./approvals-live";
import type { BundleApproval } from "@/lib/enforcement/approval";
import type { BundleConnectionCut, BundleContent, BundleCredential, BundleMaskingRule, BundleRevocation } from "@/lib/enforcement/bundle";
import { liveConnectionCuts } from "@/lib/connections/live";
import { recordEvent } from "@/lib/trail/record";
import { bundleCredential } from "@/lib/vault/binding";
import { stillTrusted } from "./trust";

/**
 * The live sections of a bundle: state an admin changes with immediate effect
 * (revocations, client approval, credential versions, masking, approvals of calls), as opposed to
 * policies, which go through tests and an explicit publish.
 */
export interface LiveSections {
  revocations: BundleRevocation[];
  approvedClients: { tenantId: string; clientId: string }[];
  clientApproval: string[];
  credentials: BundleCredential[];
  masking: BundleMaskingRule[];
  /** Decided approval requests (lib/bundles/approvals-live.ts); optional for callers that build sections by hand. */
  approvals?: BundleApproval[];
  /** Ended brokered per-user OAuth connections (lib/connections/live.ts); optional like approvals. */
  connectionCuts?: BundleConnectionCut[];
}

export const emptyLive = (): LiveSections => ({ revocations: [], approvedClients: [], clientApproval: [], credentials: [], masking: [], approvals: [] });

/** The tenants each of these servers admits now (its owner and those it is shared with), by server id. */
export async function admittedTenants(db: Db, serverIds: string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  if (!serverIds.length) return out;
  const [own, shared] = await Promise.all([
    db.select({ s: servers.id, t: servers.tenantId }).from(servers).where(inArray(servers.id, serverIds)),
    db.select({ s: serverTenants.serverId, t: serverTenants.tenantId }).from(serverTenants).where(inArray(serverTenants.serverId, serverIds)),
  ]);
  for (const r of own) out.set(r.s, new Set([r.t]));
  for (const r of shared) out.get(r.s)?.add(r.t);
  return out;
}

/**
 * Reads the live sections for a set of servers (a fleet's), sorted so equal
 * state gives equal content. `tenantIds` must be the union of the tenants the
 * bundle's servers admit (each server's `tenantIds`): the live sections and
 * the admitted tenants then come from one tenant set, so no bundle admits a
 * tenant without carrying its revocations (issue 10, defect 4).
 */
export async function loadLiveSections(db: Db, serverIds: string[], admitted?: string[]): Promise<LiveSections> {
  if (!serverIds.length) return emptyLive();
  // Without the bundle's tenant set: every tenant these servers admit now.
  const tenantIds = admitted ?? [...new Set([...(await admittedTenants(db, serverIds)).values()].flatMap((s) => [...s]))].sort();
  if (!tenantIds.length) return emptyLive();
  const [revRows, clientRows, tenantRows, entryRows, maskRows, approvalLines] = await Promise.all([
    db
      .select()
      .from(revocations)
      .where(and(inArray(revocations.tenantId, tenantIds), or(isNull(revocations.serverId), inArray(revocations.serverId, serverIds)))),
    db
      .select()
      .from(oauthClients)
      .where(and(inArray(oauthClients.tenantId, tenantIds), eq(oauthClients.status, "approved"))),
    db
      .select({ id: tenants.id })
      .from(tenants)
      .where(and(inArray(tenants.id, tenantIds), eq(tenants.requireClientApproval, true))),
    db
      .select({ entry: vaultEntries, upstreamUrl: servers.upstreamUrl })
      .from(vaultEntries)
      .innerJoin(servers, eq(servers.id, vaultEntries.serverId))
      .where(and(inArray(vaultEntries.serverId, serverIds), eq(vaultEntries.status, "active"))),
    db.select().from(maskingRules).where(inArray(maskingRules.serverId, serverIds)),
    liveApprovals(db, serverIds, tenantIds),
  ]);
  const connectionCuts = await liveConnectionCuts(db, serverIds, tenantIds);
  // Only the latest cut-off per (tenant, user, client, server) matters: a later one rejects everything an earlier one did.
  const latest = new Map<string, BundleRevocation>();
  for (const r of revRows) {
    const rev: BundleRevocation = {
      tenantId: r.tenantId,
      ...(r.userId ? { user: r.userId } : {}),
      ...(r.clientId ? { client: r.clientId } : {}),
      ...(r.serverId ? { serverId: r.serverId } : {}),
      before: r.before.toISOString(),
    };
    const key = `${r.tenantId}\u0000${r.userId ?? ""}\u0000${r.clientId ?? ""}\u0000${r.serverId ?? ""}`;
    const prev = latest.get(key);
    if (!prev || prev.before < rev.before) latest.set(key, rev);
  }
  const byJson = <T>(a: T, b: T) => (canonicalize(a) ?? "").localeCompare(canonicalize(b) ?? "");
  return {
    revocations: [...latest.values()].sort(byJson),
    approvedClients: clientRows.map((c) => ({ tenantId: c.tenantId, clientId: c.clientId })).sort(byJson),
    clientApproval: tenantRows.map((t) => t.id).sort(),
    // Each line names the origin its secret is bound to, and is marked suspended while the server's upstream is elsewhere (lib/vault/origin.ts).
    credentials: entryRows
      .filter((r) => r.entry.tenantId === null || tenantIds.includes(r.entry.tenantId))
      .map((r) => bundleCredential(r.entry, r.upstreamUrl))
      .sort(byJson),
    masking: maskRows.map((m) => ({ serverId: m.serverId, tool: m.tool, paths: [...m.paths], mode: m.mode })).sort(byJson),
    approvals: approvalLines,
    connectionCuts,
  };
}

/** Sets the live sections of bundle content (a copy). */
export function withLive(content: BundleContent, live: LiveSections): BundleContent {
  return { ...content, ...live };
}

/** The union of the tenants a bundle's servers admit. */
export const tenantsAdmitted = (servers: { tenantIds: string[] }[]) => [...new Set(servers.flatMap((s) => s.tenantIds))].sort();

/**
 * Keeps only these servers in bundle content (a copy): their catalogue,
 * policies and entities go with them.
 */
export function restrictToServers(content: BundleContent, serverIds: Set<string>): BundleContent {
  const keep = (id: string) => serverIds.has(id);
  const policyIds = Object.keys(content.cedar.policies).filter((id) => {
    const m = content.policies[id];
    return !m || keep(m.serverId);
  });
  return {
    ...content,
    servers: content.servers.filter((s) => keep(s.id)),
    catalogue: content.catalogue.filter((t) => keep(t.serverId)),
    cedar: {
      ...content.cedar,
      policies: Object.fromEntries(policyIds.map((id) => [id, content.cedar.policies[id]!])),
      entities: content.cedar.entities.filter((e) => (e.uid.type === "Server" ? keep(e.uid.id) : e.uid.type === "Tool" ? keep(e.uid.id.slice(0, e.uid.id.indexOf("/"))) : true)),
    },
    policies: Object.fromEntries(Object.entries(content.policies).filter(([, m]) => keep(m.serverId))),
  };
}

/**
 * Brings the infrastructure of published content up to date without
 * publishing any draft: servers the fleet no longer serves (or that are gone)
 * are dropped, each server admits only tenants it still admits now (a tenant
 * unshared since leaves at once; a tenant shared since waits for a publish,
 * which runs its tests), the trust carried follows the admitted tenants, and
 * the live sections are read fresh for exactly that tenant set. Used by every
 * live-only republish and by rollback, in the caller's transaction.
 */
export async function refreshLive(db: Db, content: BundleContent, fleetServerIds: string[]): Promise<BundleContent> {
  const now = await admittedTenants(db, fleetServerIds);
  const kept = restrictToServers(content, new Set(content.servers.filter((s) => now.has(s.id)).map((s) => s.id)));
  const servers = await Promise.all(
    kept.servers.map(async (s) => {
      const allowed = now.get(s.id)!;
      const tenantIds = s.tenantIds.filter((t) => allowed.has(t));
      // Trust is carried only for the tenants admitted, and only as each still configures it (removed or changed entries leave at once).
      return {
        ...s,
        tenantIds,
        ...(s.trust
          ? {
              trust: await stillTrusted(
                db,
                s.trust.filter((x) => tenantIds.includes(x.tenantId)),
              ),
            }
          : {}),
      };
    }),
  );
  const live = await loadLiveSections(
    db,
    servers.map((s) => s.id),
    tenantsAdmitted(servers),
  );
  return withLive({ ...kept, servers }, live);
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
export async function republishLive(db: Db, actor: Actor | "system", serverIds: string[] | null, why: string, insert: InsertRevision): Promise<{ fleetId: string; revision: number }[]> {
  const fleetIds = serverIds
    ? [...new Set((await (serverIds.length ? db.select({ f: fleetServers.fleetId }).from(fleetServers).where(inArray(fleetServers.serverId, serverIds)) : Promise.resolve([]))).map((r) => r.f))]
    : (await db.select({ id: fleets.id }).from(fleets)).map((r) => r.id);
  const out: { fleetId: string; revision: number }[] = [];
  for (const fleetId of fleetIds.sort()) {
    const [fleet] = await db.select().from(fleets).where(eq(fleets.id, fleetId)).for("update");
    if (!fleet || fleet.activeRevision === null) continue;
    const [active] = await db
      .select()
      .from(bundles)
      .where(and(eq(bundles.fleetId, fleet.id), eq(bundles.revision, fleet.activeRevision)));
    if (!active) continue;
    const prev = active.content as unknown as BundleContent;
    const ids = (await db.select({ id: fleetServers.serverId }).from(fleetServers).where(eq(fleetServers.fleetId, fleet.id))).map((r) => r.id);
    // Servers, admitted tenants and live sections are refreshed together, from one tenant set.
    const fresh = await refreshLive(db, prev, ids);
    if (canonicalize({ ...fresh, manifest: null }) === canonicalize({ ...prev, manifest: null })) continue;
    const [{ max }] = (await db
      .select({ max: sql<number | null>`max(${bundles.revision})` })
      .from(bundles)
      .where(eq(bundles.fleetId, fleet.id))) as [{ max: number | null }];
    const revision = Number(max ?? 0) + 1;
    const content: BundleContent = { ...fresh, manifest: { ...prev.manifest, revision, parentRevision: fleet.activeRevision, createdAt: new Date().toISOString() } };
    await insert(db, fleet, content, { note: why, createdBy: actor === "system" ? "system" : actor.label });
    await recordEvent(db, actor, { action: "bundle.republish", targetType: "fleet", targetId: fleet.id, tenantId: null, before: { revision: fleet.activeRevision }, after: { revision, reason: why } });
    out.push({ fleetId: fleet.id, revision });
  }
  return out;
}
