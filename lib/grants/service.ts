import "server-only";
import { and, desc, eq, inArray, isNull, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { grants, oauthClients, revocations, serverTenants, servers, tenantIssuers, tenants, type Grant, type OAuthClient, type Revocation } from "@/db/schema";
import { can, type Permission } from "@/lib/auth/permissions";
import type { Kek } from "@/lib/bundles/signing";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Ctx } from "@/lib/context";
import { AppError, conflict, forbidden, notFound, type FieldIssue } from "@/lib/errors";
import { redactUrlsIn } from "@/lib/enforcement/redact";
import { newId } from "@/lib/ids";
import { EgressError, egressFetch, readText } from "@/lib/net/egress";
import { egressPolicy } from "@/lib/net/policy";
import { loadTenant, readableTenantIds } from "@/lib/tenants/service";
import { recordEvent } from "@/lib/trail/record";
import { guessRegistration } from "./learn";

export const MAX_IMPORT_ROWS = 5000;
const METADATA_TIMEOUT_MS = 5000;
const METADATA_MAX_BYTES = 64 * 1024;

const idText = (max: number) => z.string().trim().min(1, "must not be empty").max(max, `must be at most ${max} characters`);
const reason = z.string().trim().max(500, "must be at most 500 characters").default("").describe("Why (shown in the revocation history)");
const cursor = z.string().max(300).optional().describe("Opaque cursor from the previous page's nextCursor");
const limit = z.coerce.number().int().min(1).max(200).default(50);

// ---------------------------------------------------------------- inputs

export const grantListQuery = z.object({
  tenantId: z.string().max(100).optional().describe("Only this tenant's grants"),
  userId: z.string().max(256).optional().describe("Only this user's grants"),
  clientId: z.string().max(256).optional().describe("Only this client's grants"),
  serverId: z.string().max(100).optional().describe("Only grants on this server"),
  status: z.enum(["active", "revoked"]).optional().describe("Only active or only revoked grants"),
  cursor,
  limit,
});
export type GrantListQuery = z.infer<typeof grantListQuery>;

export const importGrantsInput = z.object({
  tenantId: z.string().max(100).describe("The tenant the grants belong to"),
  grants: z
    .array(
      z.object({
        serverId: idText(100),
        userId: idText(256),
        clientId: idText(256),
        scopes: z.array(z.string().trim().min(1).max(128)).max(100).default([]),
        grantedAt: z.iso.datetime({ offset: true }).optional().describe("When the user consented (ISO 8601)"),
      }),
    )
    .min(1, "must hold at least one grant")
    .max(MAX_IMPORT_ROWS, `at most ${MAX_IMPORT_ROWS} grants per import`)
    .describe("Grants as exported by the authorization server"),
});
export type ImportGrantsInput = z.infer<typeof importGrantsInput>;

export const revokeGrantInput = z.object({ reason });
export const revokeInput = z
  .object({
    tenantId: z.string().max(100),
    userId: idText(256).optional().describe("Revoke every grant of this user"),
    clientId: idText(256).optional().describe("Revoke every grant to this client"),
    serverId: z.string().max(100).optional().describe("Only on this server (default: every server of the tenant)"),
    reason,
  })
  .refine((v) => (v.userId === undefined) !== (v.clientId === undefined), { message: "give exactly one of userId or clientId", path: ["userId"] });
export type RevokeInput = z.infer<typeof revokeInput>;

export const clientListQuery = z.object({ tenantId: z.string().max(100).describe("The tenant whose clients to list") });
export const clientApprovalInput = z.object({
  tenantId: z.string().max(100),
  requireClientApproval: z.boolean().describe("Deny calls from clients an admin has not approved"),
});
export const revocationListQuery = z.object({ tenantId: z.string().max(100).optional(), cursor, limit });

// ---------------------------------------------------------------- output shapes

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function publicGrant(g: Grant & { serverName?: string | null; clientName?: string | null }) {
  return {
    id: g.id,
    tenantId: g.tenantId,
    serverId: g.serverId,
    serverName: g.serverName ?? null,
    userId: g.userId,
    clientId: g.clientId,
    clientName: g.clientName || null,
    scopes: g.scopes,
    source: g.source,
    calls: g.calls,
    firstSeenAt: iso(g.firstSeenAt),
    lastSeenAt: iso(g.lastSeenAt),
    status: g.revokedAt ? ("revoked" as const) : ("active" as const),
    revokedAt: iso(g.revokedAt),
    revokedBy: g.revokedBy,
  };
}
export type PublicGrant = ReturnType<typeof publicGrant>;

export function publicClient(c: OAuthClient) {
  return {
    id: c.id,
    tenantId: c.tenantId,
    clientId: c.clientId,
    name: c.name,
    redirectUris: c.redirectUris,
    registration: c.registration,
    status: c.status,
    decidedBy: c.decidedBy,
    decidedAt: iso(c.decidedAt),
    firstSeenAt: iso(c.firstSeenAt),
    lastSeenAt: iso(c.lastSeenAt),
  };
}
export type PublicClient = ReturnType<typeof publicClient>;

export function publicRevocation(r: Revocation & { serverName?: string | null }) {
  return {
    id: r.id,
    tenantId: r.tenantId,
    serverId: r.serverId,
    serverName: r.serverName ?? null,
    userId: r.userId,
    clientId: r.clientId,
    grantId: r.grantId,
    before: r.before.toISOString(),
    reason: r.reason,
    upstreamRevocation: r.upstreamRevocation,
    createdBy: r.createdBy,
    createdAt: r.createdAt.toISOString(),
  };
}
export type PublicRevocation = ReturnType<typeof publicRevocation>;

// ---------------------------------------------------------------- helpers

/** The tenants the actor may read, as a filter on `column` (undefined = no filter; null = nothing readable). */
function readableFilter(ctx: Ctx, column: typeof grants.tenantId | typeof revocations.tenantId): SQL | undefined | null {
  const ids = readableTenantIds(ctx.actor);
  if (ids === "all") return undefined;
  const ok = ids.filter((t) => can(ctx.actor, "tenants.read", t));
  return ok.length ? inArray(column, ok) : null;
}

/** Servers a tenant may use: the ones it owns and the ones shared with it. */
async function serversOfTenant(db: Db, tenantId: string): Promise<{ id: string; issuers: unknown[] }[]> {
  const rows = await db
    .select({ id: servers.id, issuers: servers.issuers })
    .from(servers)
    .where(or(eq(servers.tenantId, tenantId), inArray(servers.id, db.select({ id: serverTenants.serverId }).from(serverTenants).where(eq(serverTenants.tenantId, tenantId)))));
  return rows.map((r) => ({ id: r.id, issuers: r.issuers as unknown[] }));
}

/**
 * What happens at the authorization server. RFC 7009 revokes a token, and the
 * control plane never holds one: when a trusted issuer declares a revocation
 * endpoint, agents call it with each token they refuse for this revocation.
 */
function upstreamRevocationFor(issuers: unknown[]): { status: "not_configured" | "sent"; detail: string } {
  const endpoints = issuers
    .map((i) => (i && typeof i === "object" && "revocationEndpoint" in i ? (i as { revocationEndpoint?: unknown }).revocationEndpoint : undefined))
    .filter((e): e is string => typeof e === "string" && e.length > 0);
  if (!endpoints.length) return { status: "not_configured", detail: "No issuer the tenant trusts declares a revocation endpoint; agents refuse the tokens." };
  return { status: "sent", detail: `Published to agents, which call ${[...new Set(endpoints)].join(", ")} (RFC 7009) with each token they refuse.` };
}

function encodeCursor(ts: string, id: string) {
  return Buffer.from(JSON.stringify([ts, id])).toString("base64url");
}
function decodeCursor(c: string | undefined): [string, string] | null {
  if (!c) return null;
  try {
    const v = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string" && !Number.isNaN(Date.parse(v[0]))) return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw new AppError("validation_failed", "The cursor is not valid", [{ path: "cursor", message: "not a cursor from this list" }]);
}

// ---------------------------------------------------------------- grants

/** Grants the actor can read, most recently used first, keyset-paged. */
export async function listGrants(ctx: Ctx, q: GrantListQuery): Promise<{ items: PublicGrant[]; nextCursor: string | null }> {
  const filters: SQL[] = [];
  if (q.tenantId) {
    if (!can(ctx.actor, "tenants.read", q.tenantId)) return { items: [], nextCursor: null };
    filters.push(eq(grants.tenantId, q.tenantId));
  } else {
    const f = readableFilter(ctx, grants.tenantId);
    if (f === null) return { items: [], nextCursor: null };
    if (f) filters.push(f);
  }
  if (q.userId) filters.push(eq(grants.userId, q.userId));
  if (q.clientId) filters.push(eq(grants.clientId, q.clientId));
  if (q.serverId) filters.push(eq(grants.serverId, q.serverId));
  if (q.status === "active") filters.push(isNull(grants.revokedAt));
  if (q.status === "revoked") filters.push(sql`${grants.revokedAt} is not null`);
  // Never-used imported grants sort by their grant time, then creation.
  const seen = sql`coalesce(${grants.lastSeenAt}, ${grants.firstSeenAt}, ${grants.createdAt})`;
  const c = decodeCursor(q.cursor);
  if (c) filters.push(sql`(${seen}, ${grants.id}) < (${c[0]}::timestamptz, ${c[1]})`);
  const rows = await ctx.db
    .select({ g: grants, serverName: servers.name, clientName: oauthClients.name, seen: sql<string>`(${seen})::text` })
    .from(grants)
    .leftJoin(servers, eq(servers.id, grants.serverId))
    .leftJoin(oauthClients, and(eq(oauthClients.tenantId, grants.tenantId), eq(oauthClients.clientId, grants.clientId)))
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(desc(seen), desc(grants.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => publicGrant({ ...r.g, serverName: r.serverName, clientName: r.clientName })),
    nextCursor: rows.length > q.limit && last ? encodeCursor(last.seen, last.g.id) : null,
  };
}

/** Loads a grant and authorizes against its own tenant (another tenant's grant: 404). */
async function loadGrant(ctx: Ctx, grantId: string, perm: Permission): Promise<Grant> {
  const [g] = await ctx.db.select().from(grants).where(eq(grants.id, grantId));
  if (!g || !can(ctx.actor, "tenants.read", g.tenantId)) throw notFound("Grant");
  if (!can(ctx.actor, perm, g.tenantId)) throw forbidden();
  return g;
}

export async function getGrant(ctx: Ctx, grantId: string) {
  return publicGrant(await loadGrant(ctx, grantId, "tenants.read"));
}

/**
 * Imports grants exported by an authorization server. All or nothing: every
 * row is checked first (its server must be usable by the tenant) and any
 * problem rejects the whole import, naming the rows.
 */
export async function importGrants(ctx: Ctx, input: ImportGrantsInput) {
  const tenant = await loadTenant(ctx, input.tenantId, "grants.write");
  const usable = new Set((await serversOfTenant(ctx.db, tenant.id)).map((s) => s.id));
  const issues: FieldIssue[] = [];
  input.grants.forEach((g, i) => {
    if (!usable.has(g.serverId)) issues.push({ path: `grants.${i}.serverId`, message: `row ${i + 1}: unknown server, or not one this tenant uses` });
  });
  if (issues.length) throw new AppError("validation_failed", `${issues.length} of ${input.grants.length} rows are invalid; nothing was imported`, issues.slice(0, 200));

  // Duplicates inside the file merge (scopes united, earliest grant time).
  const merged = new Map<string, { id: string; server_id: string; user_id: string; client_id: string; scopes: Set<string>; granted: string | null }>();
  for (const g of input.grants) {
    const k = `${g.serverId}\u0000${g.userId}\u0000${g.clientId}`;
    const at = g.grantedAt ? new Date(g.grantedAt).toISOString() : null;
    const m = merged.get(k);
    if (m) {
      g.scopes.forEach((s) => m.scopes.add(s));
      if (at && (!m.granted || at < m.granted)) m.granted = at;
    } else merged.set(k, { id: newId("grant"), server_id: g.serverId, user_id: g.userId, client_id: g.clientId, scopes: new Set(g.scopes), granted: at });
  }
  const payload = JSON.stringify([...merged.values()].map((m) => ({ ...m, scopes: [...m.scopes].sort() })));
  const clientPayload = JSON.stringify([...new Set(input.grants.map((g) => g.clientId))].sort().map((c) => ({ id: newId("client"), client_id: c, registration: guessRegistration(c) })));
  return ctx.db.transaction(async (tx) => {
    const res = (await tx.execute(sql`
      insert into grants (id, tenant_id, server_id, user_id, client_id, scopes, source, first_seen_at)
      select t.id, ${tenant.id}, t.server_id, t.user_id, t.client_id, t.scopes, 'imported', t.granted
      from jsonb_to_recordset(${payload}::jsonb) as t(id text, server_id text, user_id text, client_id text, scopes jsonb, granted timestamptz)
      on conflict (tenant_id, server_id, user_id, client_id) do update set
        first_seen_at = least(coalesce(grants.first_seen_at, excluded.first_seen_at), coalesce(excluded.first_seen_at, grants.first_seen_at)),
        scopes = case when grants.scopes @> excluded.scopes then grants.scopes
          else coalesce((select jsonb_agg(distinct s order by s) from jsonb_array_elements_text(grants.scopes || excluded.scopes) as u(s)), '[]'::jsonb) end
      returning (xmax = 0) as inserted`)) as unknown as { inserted: boolean }[] | { rows?: { inserted: boolean }[] };
    await tx.execute(sql`
      insert into oauth_clients (id, tenant_id, client_id, registration)
      select t.id, ${tenant.id}, t.client_id, t.registration
      from jsonb_to_recordset(${clientPayload}::jsonb) as t(id text, client_id text, registration text)
      on conflict (tenant_id, client_id) do nothing`);
    // postgres.js answers an array, PGlite { rows }.
    const rows = Array.isArray(res) ? res : (res.rows ?? []);
    const created = rows.filter((r) => r.inserted).length;
    const out = { received: input.grants.length, created, updated: rows.length - created };
    await recordEvent(tx, ctx.actor, { action: "grants.import", targetType: "tenant", targetId: tenant.id, tenantId: tenant.id, after: out });
    return out;
  });
}

// ---------------------------------------------------------------- revocation

async function insertRevocation(
  tx: Db,
  ctx: Ctx,
  kek: Kek,
  r: { tenantId: string; serverIds: string[]; serverId: string | null; userId: string | null; clientId: string | null; grantId: string | null; reason: string },
) {
  // Agents report to the endpoint of the tenant's own trust entry (never a server's or another tenant's).
  const issuers = await tx.select({ revocationEndpoint: tenantIssuers.revocationEndpoint }).from(tenantIssuers).where(eq(tenantIssuers.tenantId, r.tenantId));
  const before = new Date(); // JS dates are millisecond precision, like the column.
  const [row] = await tx
    .insert(revocations)
    .values({
      id: newId("revocation"),
      tenantId: r.tenantId,
      serverId: r.serverId,
      userId: r.userId,
      clientId: r.clientId,
      grantId: r.grantId,
      before,
      reason: r.reason,
      upstreamRevocation: upstreamRevocationFor(issuers),
      createdBy: ctx.actor.label,
    })
    .returning();
  const matches: SQL[] = [eq(grants.tenantId, r.tenantId), isNull(grants.revokedAt)];
  if (r.grantId) matches.push(eq(grants.id, r.grantId));
  if (r.serverId) matches.push(eq(grants.serverId, r.serverId));
  if (r.userId) matches.push(eq(grants.userId, r.userId));
  if (r.clientId) matches.push(eq(grants.clientId, r.clientId));
  const revoked = await tx
    .update(grants)
    .set({ revokedAt: before, revokedBy: ctx.actor.label })
    .where(and(...matches))
    .returning({ id: grants.id });
  const what = r.grantId ? `grant ${r.grantId}` : r.userId ? `user ${r.userId}` : `client ${r.clientId}`;
  await recordEvent(tx, ctx.actor, {
    action: r.grantId ? "grant.revoke" : r.userId ? "grants.revoke_user" : "grants.revoke_client",
    targetType: r.grantId ? "grant" : "revocation",
    targetId: r.grantId ?? row!.id,
    tenantId: r.tenantId,
    after: { revocationId: row!.id, serverId: r.serverId, userId: r.userId, clientId: r.clientId, before: before.toISOString(), reason: r.reason, grantsRevoked: revoked.length },
  });
  const bundles = await republishLiveBundles(tx, ctx.actor, kek, r.serverIds, `revoke ${what}`);
  return { revocation: publicRevocation(row!), grantsRevoked: revoked.length, republished: bundles };
}

/** Revokes one grant: tokens of (user, client, server) issued before now are refused by every agent. */
export async function revokeGrant(ctx: Ctx, grantId: string, input: z.infer<typeof revokeGrantInput>, kek: Kek) {
  return ctx.db.transaction(async (tx) => {
    const tctx = { db: tx, actor: ctx.actor };
    // Locked, so two concurrent revocations cannot both pass the check; authorized against the row's tenant.
    const [g] = await tx.select().from(grants).where(eq(grants.id, grantId)).for("update");
    if (!g || !can(ctx.actor, "tenants.read", g.tenantId)) throw notFound("Grant");
    if (!can(ctx.actor, "grants.write", g.tenantId)) throw forbidden();
    if (g.revokedAt) throw conflict(`This grant was already revoked at ${g.revokedAt.toISOString()} by ${g.revokedBy ?? "someone"}; nothing changed`);
    return insertRevocation(tx, tctx, kek, { tenantId: g.tenantId, serverIds: [g.serverId], serverId: g.serverId, userId: g.userId, clientId: g.clientId, grantId: g.id, reason: input.reason });
  });
}

/** Revokes every grant of a user, or of a client, in a tenant (optionally on one server), including tokens not yet seen. */
export async function revokeAll(ctx: Ctx, input: RevokeInput, kek: Kek) {
  const tenant = await loadTenant(ctx, input.tenantId, "grants.write");
  const usable = await serversOfTenant(ctx.db, tenant.id);
  let scope = usable;
  if (input.serverId) {
    scope = usable.filter((s) => s.id === input.serverId);
    if (!scope.length) throw new AppError("validation_failed", "Unknown server", [{ path: "serverId", message: "not a server this tenant uses" }]);
  }
  return ctx.db.transaction((tx) =>
    insertRevocation(tx, { db: tx, actor: ctx.actor }, kek, {
      tenantId: tenant.id,
      serverIds: scope.map((s) => s.id),
      serverId: input.serverId ?? null,
      userId: input.userId ?? null,
      clientId: input.clientId ?? null,
      grantId: null,
      reason: input.reason,
    }),
  );
}

export const revokeUser = (ctx: Ctx, tenantId: string, userId: string, o: { serverId?: string; reason?: string }, kek: Kek) =>
  revokeAll(ctx, { tenantId, userId, serverId: o.serverId, reason: o.reason ?? "" }, kek);
export const revokeClient = (ctx: Ctx, tenantId: string, clientId: string, o: { serverId?: string; reason?: string }, kek: Kek) =>
  revokeAll(ctx, { tenantId, clientId, serverId: o.serverId, reason: o.reason ?? "" }, kek);

/** Revocation history, newest first. */
export async function listRevocations(ctx: Ctx, q: z.infer<typeof revocationListQuery>): Promise<{ items: PublicRevocation[]; nextCursor: string | null }> {
  const filters: SQL[] = [];
  if (q.tenantId) {
    if (!can(ctx.actor, "tenants.read", q.tenantId)) return { items: [], nextCursor: null };
    filters.push(eq(revocations.tenantId, q.tenantId));
  } else {
    const f = readableFilter(ctx, revocations.tenantId);
    if (f === null) return { items: [], nextCursor: null };
    if (f) filters.push(f);
  }
  const c = decodeCursor(q.cursor);
  if (c) filters.push(sql`(${revocations.createdAt}, ${revocations.id}) < (${c[0]}::timestamptz, ${c[1]})`);
  const rows = await ctx.db
    .select({ r: revocations, serverName: servers.name, at: sql<string>`(${revocations.createdAt})::text` })
    .from(revocations)
    .leftJoin(servers, eq(servers.id, revocations.serverId))
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(desc(revocations.createdAt), desc(revocations.id))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { items: page.map((r) => publicRevocation({ ...r.r, serverName: r.serverName })), nextCursor: rows.length > q.limit && last ? encodeCursor(last.at, last.r.id) : null };
}

// ---------------------------------------------------------------- clients

/** The tenant's OAuth clients and whether it requires approval. */
export async function listClients(ctx: Ctx, tenantId: string) {
  const tenant = await loadTenant(ctx, tenantId, "tenants.read");
  const rows = await ctx.db
    .select()
    .from(oauthClients)
    .where(eq(oauthClients.tenantId, tenant.id))
    .orderBy(sql`${oauthClients.lastSeenAt} desc nulls last`, oauthClients.clientId);
  return { tenantId: tenant.id, requireClientApproval: tenant.requireClientApproval, items: rows.map(publicClient) };
}

async function loadClient(ctx: Ctx, id: string, perm: Permission): Promise<OAuthClient> {
  const [c] = await ctx.db.select().from(oauthClients).where(eq(oauthClients.id, id));
  if (!c || !can(ctx.actor, "tenants.read", c.tenantId)) throw notFound("Client");
  if (!can(ctx.actor, perm, c.tenantId)) throw forbidden();
  return c;
}

async function decideClient(ctx: Ctx, id: string, status: OAuthClient["status"], kek: Kek) {
  return ctx.db.transaction(async (tx) => {
    const tctx = { db: tx, actor: ctx.actor };
    await loadClient(tctx, id, "grants.write");
    const [c] = await tx.select().from(oauthClients).where(eq(oauthClients.id, id)).for("update");
    if (!c) throw notFound("Client");
    if (c.status === status) throw conflict(`The client is already ${status}; nothing changed`);
    const reset = status === "pending";
    const [row] = await tx
      .update(oauthClients)
      .set({ status, decidedBy: reset ? null : ctx.actor.label, decidedAt: reset ? null : new Date() })
      .where(eq(oauthClients.id, id))
      .returning();
    await recordEvent(tx, ctx.actor, {
      action: `client.${status === "approved" ? "approve" : status === "blocked" ? "block" : "reset"}`,
      targetType: "oauth_client",
      targetId: c.id,
      tenantId: c.tenantId,
      before: { status: c.status },
      after: { status, clientId: c.clientId },
    });
    const serverIds = (await serversOfTenant(tx, c.tenantId)).map((s) => s.id);
    await republishLiveBundles(tx, ctx.actor, kek, serverIds, `client ${c.clientId} ${status}`);
    return publicClient(row!);
  });
}

export const approveClient = (ctx: Ctx, id: string, kek: Kek) => decideClient(ctx, id, "approved", kek);
export const blockClient = (ctx: Ctx, id: string, kek: Kek) => decideClient(ctx, id, "blocked", kek);
export const resetClient = (ctx: Ctx, id: string, kek: Kek) => decideClient(ctx, id, "pending", kek);

/** Turns "calls from unapproved clients are denied" on or off for a tenant. */
export async function setClientApproval(ctx: Ctx, tenantId: string, required: boolean, kek: Kek) {
  const tenant = await loadTenant(ctx, tenantId, "grants.write");
  return ctx.db.transaction(async (tx) => {
    if (tenant.requireClientApproval !== required) {
      await tx.update(tenants).set({ requireClientApproval: required }).where(eq(tenants.id, tenant.id));
      await recordEvent(tx, ctx.actor, {
        action: "tenant.client_approval",
        targetType: "tenant",
        targetId: tenant.id,
        tenantId: tenant.id,
        before: { requireClientApproval: tenant.requireClientApproval },
        after: { requireClientApproval: required },
      });
      const serverIds = (await serversOfTenant(tx, tenant.id)).map((s) => s.id);
      await republishLiveBundles(tx, ctx.actor, kek, serverIds, `client approval ${required ? "required" : "not required"}`);
    }
    return { tenantId: tenant.id, requireClientApproval: required };
  });
}

// ---------------------------------------------------------------- client ID metadata documents

const metadataDocument = z.object({
  client_id: z.string(),
  client_name: z.string().max(200).optional(),
  redirect_uris: z.array(z.string().max(2000)).max(50).optional(),
});

/** https, or http to a loopback host only (local development and tests). */
function metadataUrl(clientId: string): URL | null {
  let u: URL;
  try {
    u = new URL(clientId);
  } catch {
    return null;
  }
  if (u.protocol === "https:") return u;
  if (u.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) return u;
  return null;
}

/** Through the egress guard: the client id is chosen by whoever runs the client, so it must not reach internal addresses. */
async function fetchCapped(url: URL): Promise<string> {
  try {
    const res = await egressFetch(url, { headers: { accept: "application/json" } }, { policy: egressPolicy(), timeoutMs: METADATA_TIMEOUT_MS, maxBytes: METADATA_MAX_BYTES });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new AppError("upstream_error", `The metadata document answered HTTP ${res.status}`);
    }
    return await readText(res);
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof EgressError) {
      if (err.code === "too_large") throw new AppError("upstream_error", `The metadata document is larger than ${METADATA_MAX_BYTES / 1024} KiB`);
      if (err.code === "timeout") throw new AppError("upstream_error", `The metadata document did not answer within ${METADATA_TIMEOUT_MS / 1000} s`);
      throw new AppError("upstream_error", `The metadata document could not be fetched: ${redactUrlsIn(err.message)}`);
    }
    throw new AppError("upstream_error", "The metadata document could not be fetched");
  }
}

/**
 * Fetches the client's ID metadata document (its client id is the document's
 * URL) and stores its name and redirect URIs. The document must name itself:
 * client_id equal to the URL it was fetched from.
 */
export async function refreshClientMetadata(ctx: Ctx, id: string) {
  const c = await loadClient(ctx, id, "grants.write");
  const url = metadataUrl(c.clientId);
  if (!url) throw new AppError("bad_request", "This client id is not an https URL, so it names no metadata document");
  const text = await fetchCapped(url);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError("upstream_error", "The metadata document is not valid JSON");
  }
  const doc = metadataDocument.safeParse(json);
  if (!doc.success) throw new AppError("upstream_error", `The metadata document is not valid: ${doc.error.issues.map((i) => `${i.path.join(".") || "document"} ${i.message}`).join("; ")}`);
  if (doc.data.client_id !== c.clientId) throw new AppError("upstream_error", "The metadata document's client_id does not equal its URL; it was not stored");
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(oauthClients)
      .set({ name: doc.data.client_name ?? "", redirectUris: doc.data.redirect_uris ?? [], registration: "metadata_document" })
      .where(eq(oauthClients.id, c.id))
      .returning();
    await recordEvent(tx, ctx.actor, {
      action: "client.metadata_refresh",
      targetType: "oauth_client",
      targetId: c.id,
      tenantId: c.tenantId,
      before: { name: c.name, redirectUris: c.redirectUris },
      after: { name: row!.name, redirectUris: row!.redirectUris },
    });
    return publicClient(row!);
  });
}
