import { and, asc, count, desc, eq, exists, inArray, isNull, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { agents, enrollmentTokens, fleetServers, fleets, servers, serverTenants, type Agent, type EnrollmentToken, type Fleet } from "@/db/schema";
import { formatAgentKey, formatEnrollmentToken, newSecret } from "@/lib/agents/keys";
import { hashSecret } from "@/lib/auth/actors";
import { canGlobally, seesAllTenants, type Actor } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";

/*
 * Fleets are infrastructure shared by tenants: a fleet of agents serves a set
 * of MCP servers. Only owners create, change or delete fleets, mint
 * enrollment tokens and manage agent credentials. Owners and global auditors
 * read every fleet; a tenant member reads a fleet only when it serves a
 * server that one of its tenants may use. Fleet changes are recorded in the
 * admin trail without a tenant (tenantId null): they are global.
 */

export const MAX_ENROLLMENT_TTL_MINUTES = 7 * 24 * 60;

const fleetName = z.string().trim().min(2, "must be at least 2 characters").max(80, "must be at most 80 characters");
const serverIdList = z.array(z.string().min(1).max(100)).max(500, "at most 500 servers");

export const createFleetInput = z.object({
  name: fleetName.describe("Display name, unique"),
  description: z.string().trim().max(2000).default(""),
  serverIds: serverIdList.default([]).describe("MCP servers the fleet's agents serve"),
});
export const updateFleetInput = z
  .object({
    name: fleetName.optional(),
    description: z.string().trim().max(2000).optional(),
    serverIds: serverIdList.optional().describe("Replaces the whole list"),
  })
  .refine((v) => v.name !== undefined || v.description !== undefined || v.serverIds !== undefined, "nothing to change");
export const createEnrollmentTokenInput = z.object({
  ttlMinutes: z.number().int().min(1).max(MAX_ENROLLMENT_TTL_MINUTES, "must be at most 7 days").default(60).describe("Minutes until the token expires (default 60, at most 7 days)"),
});

export type CreateFleetInput = z.input<typeof createFleetInput>;
export type UpdateFleetInput = z.input<typeof updateFleetInput>;

const isOwner = (actor: Actor) => canGlobally(actor, "tenants.create");

/** Fleets whose servers one of `tenantIds` may use (owning tenant or shared with). */
function servesTenants(db: Db, tenantIds: string[]): SQL {
  const usable = or(
    inArray(servers.tenantId, tenantIds),
    exists(
      db
        .select({ x: sql`1` })
        .from(serverTenants)
        .where(and(eq(serverTenants.serverId, servers.id), inArray(serverTenants.tenantId, tenantIds))),
    ),
  );
  return exists(
    db
      .select({ x: sql`1` })
      .from(fleetServers)
      .innerJoin(servers, eq(servers.id, fleetServers.serverId))
      .where(and(eq(fleetServers.fleetId, fleets.id), usable)),
  );
}

/** The filter on `fleets` for what the actor may read, or null when it may read them all. */
function readableFleets(ctx: Ctx): SQL | null | "none" {
  if (seesAllTenants(ctx.actor)) return null;
  const mine = [...ctx.actor.tenantRoles.keys()];
  return mine.length ? servesTenants(ctx.db, mine) : "none";
}

/**
 * Loads a fleet the actor may read (404 otherwise, so other fleets' ids reveal
 * nothing). With `ownerAction`, the actor must also be an owner (403 for a
 * reader, naming the action).
 */
async function loadFleet(ctx: Ctx, fleetId: string, ownerAction?: string, what = "Fleet"): Promise<Fleet> {
  const filter = readableFleets(ctx);
  if (filter === "none") throw notFound(what);
  const [f] = await ctx.db
    .select()
    .from(fleets)
    .where(filter ? and(eq(fleets.id, fleetId), filter) : eq(fleets.id, fleetId));
  if (!f) throw notFound(what);
  if (ownerAction && !isOwner(ctx.actor)) throw forbidden(`Only owners can ${ownerAction}`);
  return f;
}

/** Server ids of a fleet; for tenant members only those servers they may read. */
async function fleetServerIds(ctx: Ctx, fleetIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(fleetIds.map((id) => [id, []]));
  if (fleetIds.length === 0) return out;
  const filters: SQL[] = [inArray(fleetServers.fleetId, fleetIds)];
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    filters.push(
      or(
        inArray(servers.tenantId, mine),
        exists(
          ctx.db
            .select({ x: sql`1` })
            .from(serverTenants)
            .where(and(eq(serverTenants.serverId, servers.id), inArray(serverTenants.tenantId, mine))),
        ),
      )!,
    );
  }
  const rows = await ctx.db
    .select({ fleetId: fleetServers.fleetId, serverId: fleetServers.serverId })
    .from(fleetServers)
    .innerJoin(servers, eq(servers.id, fleetServers.serverId))
    .where(and(...filters))
    .orderBy(asc(servers.name), asc(servers.id));
  for (const r of rows) out.get(r.fleetId)?.push(r.serverId);
  return out;
}

function publicFleet(f: Fleet, serverIds: string[]) {
  return {
    id: f.id,
    name: f.name,
    description: f.description,
    activeRevision: f.activeRevision,
    serverIds,
    createdAt: f.createdAt.toISOString(),
    updatedAt: f.updatedAt.toISOString(),
  };
}
export type PublicFleet = ReturnType<typeof publicFleet>;

export function publicAgent(a: Agent) {
  return {
    id: a.id,
    fleetId: a.fleetId,
    name: a.name,
    version: a.version,
    bundleRevision: a.bundleRevision,
    lastSeenAt: a.lastSeenAt?.toISOString() ?? null,
    lastError: a.lastError,
    counters: a.counters ?? {},
    createdAt: a.createdAt.toISOString(),
    keyRotatedAt: a.keyRotatedAt?.toISOString() ?? null,
    revokedAt: a.revokedAt?.toISOString() ?? null,
  };
}
export type PublicAgent = ReturnType<typeof publicAgent>;

function duplicateName(err: unknown): never {
  if (isUniqueViolation(err)) throw new AppError("conflict", "A fleet with this name already exists", [{ path: "name", message: "already exists" }]);
  throw err;
}

/** Every server id must exist (owners see every server); duplicates collapse. */
async function checkServerIds(db: Db, serverIds: string[]): Promise<string[]> {
  if (serverIds.length === 0) return [];
  const found = await db
    .select({ id: servers.id })
    .from(servers)
    .where(inArray(servers.id, [...new Set(serverIds)]));
  const known = new Set(found.map((r) => r.id));
  const issues = serverIds.flatMap((id, i) => (known.has(id) ? [] : [{ path: `serverIds.${i}`, message: "unknown server" }]));
  if (issues.length) throw new AppError("validation_failed", "Unknown server", issues);
  return [...new Set(serverIds)];
}

// ---------------------------------------------------------------- fleets

/** Fleets the actor may read, by name, with their agent counts. */
export async function listFleets(ctx: Ctx) {
  const filter = readableFleets(ctx);
  if (filter === "none") return { items: [] };
  const rows = await ctx.db
    .select()
    .from(fleets)
    .where(filter ?? undefined)
    .orderBy(asc(fleets.name))
    .limit(500);
  const ids = rows.map((f) => f.id);
  const [serverIds, counts] = await Promise.all([
    fleetServerIds(ctx, ids),
    ids.length
      ? ctx.db
          .select({ fleetId: agents.fleetId, n: count(), active: sql<number>`count(*) filter (where ${agents.revokedAt} is null)`.mapWith(Number) })
          .from(agents)
          .where(inArray(agents.fleetId, ids))
          .groupBy(agents.fleetId)
      : [],
  ]);
  return {
    items: rows.map((f) => {
      const c = counts.find((x) => x.fleetId === f.id);
      return { ...publicFleet(f, serverIds.get(f.id) ?? []), agentCount: c?.active ?? 0 };
    }),
  };
}

/** One fleet, its servers and its agents (revoked ones included, newest first). */
export async function getFleet(ctx: Ctx, fleetId: string) {
  const f = await loadFleet(ctx, fleetId);
  const [serverIds, agentRows] = await Promise.all([
    fleetServerIds(ctx, [f.id]),
    ctx.db.select().from(agents).where(eq(agents.fleetId, f.id)).orderBy(desc(agents.createdAt), desc(agents.id)).limit(1000),
  ]);
  return { ...publicFleet(f, serverIds.get(f.id) ?? []), agents: agentRows.map(publicAgent) };
}

export async function createFleet(ctx: Ctx, input: CreateFleetInput) {
  if (!isOwner(ctx.actor)) throw forbidden("Only owners can create fleets");
  const v = createFleetInput.parse(input);
  const serverIds = await checkServerIds(ctx.db, v.serverIds);
  const id = newId("fleet");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx.insert(fleets).values({ id, name: v.name, description: v.description }).returning();
      if (serverIds.length) await tx.insert(fleetServers).values(serverIds.map((serverId) => ({ fleetId: id, serverId })));
      const out = publicFleet(row!, serverIds);
      await recordEvent(tx, ctx.actor, { action: "fleet.create", targetType: "fleet", targetId: id, tenantId: null, after: out });
      return out;
    });
  } catch (err) {
    duplicateName(err);
  }
}

export async function updateFleet(ctx: Ctx, fleetId: string, input: UpdateFleetInput) {
  const before = await loadFleet(ctx, fleetId, "change fleets");
  const v = updateFleetInput.parse(input);
  const serverIds = v.serverIds ? await checkServerIds(ctx.db, v.serverIds) : undefined;
  try {
    return await ctx.db.transaction(async (tx) => {
      const prevServers = (await fleetServerIds({ ...ctx, db: tx }, [before.id])).get(before.id) ?? [];
      const [row] = await tx
        .update(fleets)
        .set({
          ...(v.name !== undefined ? { name: v.name } : {}),
          ...(v.description !== undefined ? { description: v.description } : {}),
          updatedAt: new Date(),
        })
        .where(eq(fleets.id, before.id))
        .returning();
      if (!row) throw notFound("Fleet");
      if (serverIds) {
        await tx.delete(fleetServers).where(eq(fleetServers.fleetId, before.id));
        if (serverIds.length) await tx.insert(fleetServers).values(serverIds.map((serverId) => ({ fleetId: before.id, serverId })));
      }
      const out = publicFleet(row, serverIds ?? prevServers);
      await recordEvent(tx, ctx.actor, {
        action: "fleet.update",
        targetType: "fleet",
        targetId: before.id,
        tenantId: null,
        before: publicFleet(before, prevServers),
        after: out,
      });
      return out;
    });
  } catch (err) {
    duplicateName(err);
  }
}

/** Deletes a fleet with its agents, enrollment tokens and bundles. */
export async function deleteFleet(ctx: Ctx, fleetId: string) {
  const f = await loadFleet(ctx, fleetId, "delete fleets");
  await ctx.db.transaction(async (tx) => {
    const serverIds = (await fleetServerIds({ ...ctx, db: tx }, [f.id])).get(f.id) ?? [];
    const [n] = await tx.select({ n: count() }).from(agents).where(eq(agents.fleetId, f.id));
    await tx.delete(fleets).where(eq(fleets.id, f.id));
    await recordEvent(tx, ctx.actor, { action: "fleet.delete", targetType: "fleet", targetId: f.id, tenantId: null, before: { ...publicFleet(f, serverIds), agentCount: n?.n ?? 0 } });
  });
}

// ---------------------------------------------------------------- enrollment tokens

function tokenStatus(t: EnrollmentToken, now: Date): "active" | "used" | "expired" {
  if (t.usedAt) return "used";
  return t.expiresAt <= now ? "expired" : "active";
}

function publicEnrollmentToken(t: EnrollmentToken, now = new Date()) {
  return {
    id: t.id,
    fleetId: t.fleetId,
    status: tokenStatus(t, now),
    createdBy: t.createdBy,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    usedAt: t.usedAt?.toISOString() ?? null,
    usedByAgentId: t.usedByAgentId,
  };
}

/**
 * Mints a one-time enrollment token for the fleet (owners). The token is in
 * this answer only; the database keeps the SHA-256 of its secret.
 */
export async function createEnrollmentToken(ctx: Ctx, fleetId: string, input: z.input<typeof createEnrollmentTokenInput> = {}) {
  const f = await loadFleet(ctx, fleetId, "create enrollment tokens");
  const { ttlMinutes } = createEnrollmentTokenInput.parse(input);
  const id = newId("enrollment");
  const secret = newSecret();
  const expiresAt = new Date(Date.now() + ttlMinutes * 60_000);
  await ctx.db.transaction(async (tx) => {
    await tx.insert(enrollmentTokens).values({ id, fleetId: f.id, secretHash: hashSecret(secret), createdBy: ctx.actor.userId, expiresAt });
    await recordEvent(tx, ctx.actor, {
      action: "enrollment_token.create",
      targetType: "enrollment_token",
      targetId: id,
      tenantId: null,
      after: { fleetId: f.id, expiresAt: expiresAt.toISOString() },
    });
  });
  return { id, fleetId: f.id, token: formatEnrollmentToken(id, secret), expiresAt: expiresAt.toISOString() };
}

/** Enrollment tokens of a fleet, newest first (owners and global auditors); never their secrets. */
export async function listEnrollmentTokens(ctx: Ctx, fleetId: string) {
  const f = await loadFleet(ctx, fleetId);
  if (!seesAllTenants(ctx.actor)) throw forbidden("Only owners and global auditors see enrollment tokens");
  const rows = await ctx.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.fleetId, f.id)).orderBy(desc(enrollmentTokens.createdAt), desc(enrollmentTokens.id)).limit(500);
  const now = new Date();
  return rows.map((t) => publicEnrollmentToken(t, now));
}

/**
 * Revokes an unused enrollment token. The table keeps no revocation mark, so
 * the row is deleted; the trail keeps the record.
 */
export async function revokeEnrollmentToken(ctx: Ctx, fleetId: string, tokenId: string) {
  const f = await loadFleet(ctx, fleetId, "revoke enrollment tokens");
  await ctx.db.transaction(async (tx) => {
    const [t] = await tx
      .select()
      .from(enrollmentTokens)
      .where(and(eq(enrollmentTokens.id, tokenId), eq(enrollmentTokens.fleetId, f.id)))
      .for("update");
    if (!t) throw notFound("Enrollment token");
    if (t.usedAt) throw new AppError("conflict", "The enrollment token was already used; revoke the agent instead");
    await tx.delete(enrollmentTokens).where(and(eq(enrollmentTokens.id, t.id), isNull(enrollmentTokens.usedAt)));
    await recordEvent(tx, ctx.actor, {
      action: "enrollment_token.revoke",
      targetType: "enrollment_token",
      targetId: t.id,
      tenantId: null,
      before: publicEnrollmentToken(t),
    });
  });
}

// ---------------------------------------------------------------- agents

async function loadAgentForWrite(ctx: Ctx, agentId: string, ownerAction: string): Promise<Agent> {
  const [a] = await ctx.db.select().from(agents).where(eq(agents.id, agentId));
  if (!a) throw notFound("Agent");
  await loadFleet(ctx, a.fleetId, ownerAction, "Agent");
  return a;
}

/** Replaces an agent's key (owners): the old key stops working at once. The new key is in this answer only. */
export async function rotateAgentKey(ctx: Ctx, agentId: string) {
  const a = await loadAgentForWrite(ctx, agentId, "rotate agent keys");
  if (a.revokedAt) throw new AppError("conflict", "The agent is revoked; enroll a new one");
  const secret = newSecret();
  const now = new Date();
  await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(agents)
      .set({ keyHash: hashSecret(secret), keyRotatedAt: now })
      .where(and(eq(agents.id, a.id), isNull(agents.revokedAt)))
      .returning({ id: agents.id });
    if (!row) throw new AppError("conflict", "The agent is revoked; enroll a new one");
    await recordEvent(tx, ctx.actor, { action: "agent.rotate_key", targetType: "agent", targetId: a.id, tenantId: null, after: { fleetId: a.fleetId, name: a.name, keyRotatedAt: now.toISOString() } });
  });
  return { agentId: a.id, fleetId: a.fleetId, agentKey: formatAgentKey(a.id, secret), keyRotatedAt: now.toISOString() };
}

/** Revokes an agent (owners): its key stops working at once; the row stays for the record. */
export async function revokeAgent(ctx: Ctx, agentId: string) {
  const a = await loadAgentForWrite(ctx, agentId, "revoke agents");
  if (a.revokedAt) throw new AppError("conflict", "The agent is already revoked");
  await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(agents)
      .set({ revokedAt: new Date() })
      .where(and(eq(agents.id, a.id), isNull(agents.revokedAt)))
      .returning({ id: agents.id });
    if (!row) throw new AppError("conflict", "The agent is already revoked");
    await recordEvent(tx, ctx.actor, { action: "agent.revoke", targetType: "agent", targetId: a.id, tenantId: null, before: { fleetId: a.fleetId, name: a.name } });
  });
}
