import { and, asc, count, eq, exists, ilike, inArray, or, sql, type SQL } from "drizzle-orm";
import { serverTenants, servers, tenants, tools, type Server } from "@/db/schema";
import { can, seesAllTenants, type Permission } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation, pgConstraint } from "@/lib/db-errors";
import { protectedResourceMetadata } from "@/lib/enforcement/prm";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { likePattern, offsetOf, type Page, type PageQuery } from "@/lib/pagination";
import { trustServerIssuers } from "@/lib/tenants/trust";
import { recordEvent } from "@/lib/trail/record";
import type { Db } from "@/db/client";
import type { CreateServerInput, UpdateServerInput } from "./schemas";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { suspendForOriginChange } from "@/lib/vault/origin";

export interface LoadedServer {
  server: Server;
  /** Tenants allowed to use the server, the owning tenant first. */
  tenantIds: string[];
}

async function tenantAccess(db: Db, serverId: string): Promise<string[]> {
  const rows = await db.select({ t: serverTenants.tenantId }).from(serverTenants).where(eq(serverTenants.serverId, serverId));
  return rows.map((r) => r.t);
}

/**
 * Loads a server and authorizes against its own tenants: reading needs the
 * permission in any tenant that may use it, writing needs it in the owning
 * tenant. A server the actor cannot read answers 404.
 */
export async function loadServer(ctx: Ctx, serverId: string, perm: Permission): Promise<LoadedServer> {
  const [server] = await ctx.db.select().from(servers).where(eq(servers.id, serverId));
  if (!server) throw notFound("Server");
  const tenantIds = [server.tenantId, ...(await tenantAccess(ctx.db, server.id)).filter((t) => t !== server.tenantId)];
  if (!tenantIds.some((t) => can(ctx.actor, "servers.read", t))) throw notFound("Server");
  const writes = perm !== "servers.read" && perm !== "tenants.read";
  if (writes ? !can(ctx.actor, perm, server.tenantId) : !tenantIds.some((t) => can(ctx.actor, perm, t))) throw forbidden();
  return { server, tenantIds };
}

export function publicServer({ server: s, tenantIds }: LoadedServer) {
  return {
    id: s.id,
    tenantId: s.tenantId,
    name: s.name,
    description: s.description,
    resourceUri: s.resourceUri,
    upstreamUrl: s.upstreamUrl,
    scopes: s.scopes,
    issuers: s.issuers,
    dpop: s.dpop,
    dpopNonce: s.dpopNonce,
    upstreamLogging: s.upstreamLogging,
    tenantIds,
    lastImportAt: s.lastImportAt?.toISOString() ?? null,
    lastImportError: s.lastImportError,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
    protectedResourceMetadata: protectedResourceMetadata(s),
  };
}
export type PublicServer = ReturnType<typeof publicServer>;

function mapConflict(err: unknown): never {
  if (isUniqueViolation(err)) {
    const c = pgConstraint(err) ?? "";
    if (c.includes("resource_uri")) throw new AppError("conflict", "Another server already uses this resource URI", [{ path: "resourceUri", message: "already registered" }]);
    throw new AppError("conflict", "A server with this name already exists in the tenant", [{ path: "name", message: "already exists" }]);
  }
  throw err;
}

/** Every tenant named must exist, and the actor must administer it to share a server with it. */
async function checkSharing(ctx: Ctx, tenantIds: string[]) {
  if (tenantIds.length === 0) return;
  const found = await ctx.db.select({ id: tenants.id }).from(tenants).where(inArray(tenants.id, tenantIds));
  const known = new Set(found.map((r) => r.id));
  for (const [i, t] of tenantIds.entries()) {
    if (!known.has(t) || !can(ctx.actor, "tenants.read", t)) throw new AppError("validation_failed", "Unknown tenant", [{ path: `tenantIds.${i}`, message: "unknown tenant" }]);
    if (!can(ctx.actor, "servers.write", t)) throw forbidden("You can share a server only with tenants you administer");
  }
}

export interface ServerListQuery extends PageQuery {
  tenantId?: string;
}

export async function listServers(ctx: Ctx, q: ServerListQuery): Promise<Page<PublicServer & { toolCount: number; pendingCount: number }>> {
  const filters: SQL[] = [];
  const usableBy = (ids: string[]) =>
    or(
      inArray(servers.tenantId, ids),
      exists(
        ctx.db
          .select({ x: sql`1` })
          .from(serverTenants)
          .where(and(eq(serverTenants.serverId, servers.id), inArray(serverTenants.tenantId, ids))),
      ),
    )!;
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    if (mine.length === 0) return { items: [], total: 0, page: q.page, pageSize: q.pageSize };
    filters.push(usableBy(mine));
  }
  if (q.tenantId) filters.push(usableBy([q.tenantId]));
  if (q.q) filters.push(or(ilike(servers.name, likePattern(q.q)), ilike(servers.resourceUri, likePattern(q.q)))!);
  const where = filters.length ? and(...filters) : undefined;
  const [rows, [total]] = await Promise.all([
    ctx.db.select().from(servers).where(where).orderBy(asc(servers.name), asc(servers.id)).limit(q.pageSize).offset(offsetOf(q)),
    ctx.db.select({ n: count() }).from(servers).where(where),
  ]);
  const ids = rows.map((r) => r.id);
  const [access, counts] = ids.length
    ? await Promise.all([
        ctx.db.select().from(serverTenants).where(inArray(serverTenants.serverId, ids)),
        ctx.db
          .select({
            serverId: tools.serverId,
            n: count(),
            pending: sql<number>`count(*) filter (where ${tools.approvedVersionId} is distinct from ${tools.latestVersionId} and not ${tools.blocked})`.mapWith(Number),
          })
          .from(tools)
          .where(inArray(tools.serverId, ids))
          .groupBy(tools.serverId),
      ])
    : [[], []];
  return {
    items: rows.map((s) => {
      const c = counts.find((x) => x.serverId === s.id);
      const shared = access.filter((a) => a.serverId === s.id && a.tenantId !== s.tenantId).map((a) => a.tenantId);
      return { ...publicServer({ server: s, tenantIds: [s.tenantId, ...shared] }), toolCount: c?.n ?? 0, pendingCount: c?.pending ?? 0 };
    }),
    total: total?.n ?? 0,
    page: q.page,
    pageSize: q.pageSize,
  };
}

export async function getServer(ctx: Ctx, serverId: string) {
  return publicServer(await loadServer(ctx, serverId, "servers.read"));
}

export async function createServer(ctx: Ctx, input: CreateServerInput) {
  const [owner] = await ctx.db.select().from(tenants).where(eq(tenants.id, input.tenantId));
  if (!owner || !can(ctx.actor, "tenants.read", owner.id)) throw new AppError("validation_failed", "Unknown tenant", [{ path: "tenantId", message: "unknown tenant" }]);
  if (!can(ctx.actor, "servers.write", owner.id)) throw forbidden();
  if (owner.status !== "active") throw new AppError("conflict", "The tenant is disabled");
  const shared = input.tenantIds.filter((t) => t !== owner.id);
  await checkSharing(ctx, shared);
  const id = newId("server");
  try {
    return await ctx.db.transaction(async (tx) => {
      const { tenantIds: _ignored, ...fields } = input;
      const [row] = await tx
        .insert(servers)
        .values({ id, ...fields })
        .returning();
      await tx.insert(serverTenants).values([owner.id, ...shared].map((tenantId) => ({ serverId: id, tenantId })));
      // Trust is granted by each tenant: the owner trusts the issuers it gives, and each tenant the
      // server is shared with (the actor administers it, checkSharing) is offered them too.
      for (const t of [owner.id, ...shared]) await trustServerIssuers(tx, ctx.actor, t, row!.issuers);
      const out = publicServer({ server: row!, tenantIds: [owner.id, ...shared] });
      await recordEvent(tx, ctx.actor, { action: "server.create", targetType: "server", targetId: id, tenantId: owner.id, after: out });
      return out;
    });
  } catch (err) {
    mapConflict(err);
  }
}

/** `kek` signs the live bundles an unshare republishes (required when `tenantIds` drops a tenant). */
export async function updateServer(ctx: Ctx, serverId: string, input: UpdateServerInput, kek?: Kek) {
  const loaded = await loadServer(ctx, serverId, "servers.write");
  const { server } = loaded;
  let tenantIds = loaded.tenantIds;
  if (input.tenantIds) {
    const next = input.tenantIds.filter((t) => t !== server.tenantId);
    const changed = [...next.filter((t) => !tenantIds.includes(t)), ...tenantIds.filter((t) => t !== server.tenantId && !next.includes(t))];
    await checkSharing(ctx, changed);
    tenantIds = [server.tenantId, ...next];
  }
  try {
    return await ctx.db.transaction(async (tx) => {
      const { tenantIds: _ignored, ...fields } = input;
      const [row] = await tx
        .update(servers)
        .set({ ...fields, updatedAt: new Date() })
        .where(eq(servers.id, server.id))
        .returning();
      if (row!.upstreamUrl !== server.upstreamUrl) await suspendForOriginChange(tx, ctx.actor, server, row!.upstreamUrl, kek);
      if (input.tenantIds) {
        await tx.delete(serverTenants).where(eq(serverTenants.serverId, server.id));
        await tx.insert(serverTenants).values(tenantIds.map((tenantId) => ({ serverId: server.id, tenantId })));
      }
      // The owner's edit of its server's issuers reaches the owner's own trust only, never another
      // tenant's; a tenant newly shared with (its admin is acting, checkSharing) is offered them.
      if (input.issuers) await trustServerIssuers(tx, ctx.actor, server.tenantId, row!.issuers);
      for (const t of tenantIds.filter((t) => !loaded.tenantIds.includes(t))) await trustServerIssuers(tx, ctx.actor, t, row!.issuers);
      const out = publicServer({ server: row!, tenantIds });
      await recordEvent(tx, ctx.actor, { action: "server.update", targetType: "server", targetId: server.id, tenantId: server.tenantId, before: publicServer(loaded), after: out });
      // An unshared tenant leaves every live bundle at once, with its live sections (lib/bundles/live.ts refreshLive).
      const unshared = loaded.tenantIds.filter((t) => !tenantIds.includes(t));
      if (unshared.length) {
        if (!kek) throw new Error("updateServer: unsharing republishes live bundles and needs the key-encryption key");
        await republishLiveBundles(tx, ctx.actor, kek, [server.id], `server ${server.name} no longer shared with ${unshared.join(", ")}`);
      }
      return out;
    });
  } catch (err) {
    mapConflict(err);
  }
}

export async function deleteServer(ctx: Ctx, serverId: string) {
  const loaded = await loadServer(ctx, serverId, "servers.write");
  await ctx.db.transaction(async (tx) => {
    await tx.delete(servers).where(eq(servers.id, loaded.server.id));
    await recordEvent(tx, ctx.actor, { action: "server.delete", targetType: "server", targetId: loaded.server.id, tenantId: loaded.server.tenantId, before: publicServer(loaded) });
  });
}
