import "server-only";
import { startJob } from "@/lib/jobs/scheduler";
import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import {
  credentialKinds,
  fleetServers,
  servers,
  serverTenants,
  tenants,
  vaultEntries,
  vaultVersions,
  type Agent,
  type CredentialKind,
  type CredentialPlacement,
  type OAuthClientConfig,
  type VaultEntry,
  type VaultVersion,
} from "@/db/schema";
import { can, seesAllTenants, type Actor } from "@/lib/auth/permissions";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError, conflict, forbidden, notFound, type FieldIssue } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";
import { openSecret, sealSecret, type SecretPayload } from "./crypto";
import { isSuspended, upstreamOrigin } from "./binding";
import { rollbackProblem } from "./eligibility";
import { rewrapAll } from "./keyring";
import { brokeredEntryIssues } from "./brokered";

/*
 * The upstream credential vault. Secrets are write-only: they go in through
 * create and rotate, are sealed at once (lib/vault/crypto.ts) and come out
 * only to an agent whose fleet serves the server (resolveCredential). Admins
 * see a fingerprint and the last characters at most. Every change republishes
 * the live bundle (credentials section: entry ids and current versions), so
 * agents refetch within milliseconds of the commit.
 */

export const MAX_SECRET_BYTES = 8 * 1024;
export const MAX_GRACE_SECONDS = 30 * 24 * 3600;
export const DEFAULT_GRACE_SECONDS = 3600;
/** How long an agent may cache a resolved secret (it also refetches when the bundle's version changes). */
export const CREDENTIAL_TTL_SECONDS = 300;

// Headers an upstream credential must never go into: hop-by-hop, routing and session headers.
const forbiddenHeaders = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "cookie",
  "content-length",
  "mcp-session-id",
]);
const headerToken = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const queryName = /^[A-Za-z0-9._~-]+$/;

const placementSchema = z.object({
  in: z.enum(["header", "query"]).describe("header, or query (api_key only)"),
  name: z.string().trim().min(1, "must not be empty").max(100, "must be at most 100 characters").describe("Header or query parameter name"),
});
const oauthSchema = z.object({
  tokenUrl: z.url("must be a URL").max(2000),
  clientId: z.string().trim().min(1, "must not be empty").max(500),
  scope: z.string().trim().max(1000).optional(),
  audience: z.string().trim().max(1000).optional(),
  authMethod: z.enum(["client_secret_basic", "client_secret_post"]).default("client_secret_basic"),
  authorizationUrl: z.url("must be a URL").max(2000).optional().describe("oauth_user_brokered: the upstream AS authorization endpoint"),
  issuer: z.url("must be a URL").max(2000).optional().describe("oauth_user_brokered: the upstream AS issuer, compared with the RFC 9207 iss of the authorization response"),
});
const secretValue = z
  .union([z.string(), z.object({ username: z.string(), password: z.string() }).strict(), z.object({ clientSecret: z.string() }).strict()])
  .describe("WRITE-ONLY secret: a string (api_key, bearer), {username, password} (basic) or {clientSecret} (oauth_client_credentials, oauth_token_exchange). Never returned.");
const dateInput = z.union([z.iso.datetime({ offset: true }), z.date()]).transform((v) => new Date(v));

export const createEntryInput = z.object({
  serverId: z.string().min(1).max(100),
  tenantId: z.string().min(1).max(100).nullable().default(null).describe("The tenant this credential is for; null: shared by every tenant of the server"),
  name: z.string().trim().min(1, "must not be empty").max(120, "must be at most 120 characters"),
  kind: z.enum(credentialKinds),
  placement: placementSchema.optional().describe("Where the agent puts it; default for bearer, basic and OAuth: the Authorization header"),
  oauth: oauthSchema.optional().describe("Required for oauth_client_credentials and oauth_token_exchange (for token exchange, `audience` is the upstream resource the exchanged token is for)"),
  notes: z.string().trim().max(2000).default(""),
  owner: z.string().trim().max(200).default("").describe("Who is responsible for this credential upstream"),
  secret: secretValue,
  rotationIntervalDays: z.number().int().min(1).max(3650).nullable().optional().describe("Rotation reminder: the entry shows as due after this many days"),
});
export const rotateEntryInput = z.object({
  secret: secretValue,
  graceSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS, "must be at most 30 days").default(DEFAULT_GRACE_SECONDS).describe("How long the previous version stays valid (0: retired at once)"),
  activateAt: dateInput.optional().describe("Schedule the new version instead of making it current now"),
});
export const updateEntryInput = z
  .object({
    name: z.string().trim().min(1, "must not be empty").max(120).optional(),
    notes: z.string().trim().max(2000).optional(),
    owner: z.string().trim().max(200).optional(),
    rotationIntervalDays: z.number().int().min(1).max(3650).nullable().optional(),
    placement: placementSchema.optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), "nothing to change");
export const listEntriesQuery = z.object({ serverId: z.string().max(100).optional(), tenantId: z.string().max(100).optional() });
export const resolveCredentialInput = z.object({
  serverId: z.string().min(1).max(100),
  tenantId: z.string().min(1).max(100),
  version: z.number().int().min(1).optional().describe("A version still in its grace period; default: the current one"),
});

export const confirmOriginInput = z.object({
  origin: z
    .string()
    .max(300)
    .describe(
      "The server's current upstream origin (scheme://host[:port]) as shown on the entry: the secret is confirmed for exactly this origin, so a confirmation never applies to an upstream changed since it was read",
    ),
});
export type ConfirmOriginInput = z.input<typeof confirmOriginInput>;
export type CreateEntryInput = z.input<typeof createEntryInput>;
export type RotateEntryInput = z.input<typeof rotateEntryInput>;
export type UpdateEntryInput = z.input<typeof updateEntryInput>;

/** Parses with zod, turning problems into one AppError with every field issue (never echoing a value). */
export function parse<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new AppError(
      "validation_failed",
      "The request is not valid",
      r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    );
  return r.data;
}

const invalid = (issues: FieldIssue[]) => new AppError("validation_failed", issues.map((i) => `${i.path}: ${i.message}`).join("; "), issues);

function defaultPlacement(kind: CredentialKind, p: CredentialPlacement | undefined): CredentialPlacement | undefined {
  return p ?? (kind === "api_key" ? undefined : { in: "header", name: "authorization" });
}

function placementIssues(kind: CredentialKind, p: CredentialPlacement | undefined): FieldIssue[] {
  if (!p) return [{ path: "placement", message: "an api_key needs a placement: the header or query parameter it goes into" }];
  if (p.in === "query") {
    if (kind !== "api_key") return [{ path: "placement.in", message: `a ${kind} credential goes into a header; only an api_key can go into the query` }];
    if (!queryName.test(p.name)) return [{ path: "placement.name", message: "a query parameter name may hold letters, digits, '.', '_', '~' and '-' only" }];
    return [];
  }
  if (!headerToken.test(p.name)) return [{ path: "placement.name", message: "is not a valid HTTP header name" }];
  if (forbiddenHeaders.has(p.name.toLowerCase())) return [{ path: "placement.name", message: `the ${p.name.toLowerCase()} header cannot carry a credential` }];
  return [];
}

const hasControl = (s: string) => /[\r\n\0]/.test(s);

/** Checks the secret's shape against the kind; returns it normalized (OAuth accepts a bare string). */
function checkSecret(kind: CredentialKind, secret: SecretPayload, path = "secret"): { payload?: SecretPayload; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  let payload: SecretPayload | undefined;
  if (kind === "api_key" || kind === "bearer") {
    if (typeof secret !== "string") issues.push({ path, message: `a ${kind} secret is a string` });
    else payload = secret;
  } else if (kind === "basic") {
    if (typeof secret !== "object" || !("username" in secret)) issues.push({ path, message: "a basic secret is {username, password}" });
    else {
      payload = secret;
      if (!secret.username) issues.push({ path: `${path}.username`, message: "must not be empty" });
      if (secret.username.includes(":")) issues.push({ path: `${path}.username`, message: "must not contain ':' (RFC 7617)" });
      if (!secret.password) issues.push({ path: `${path}.password`, message: "must not be empty" });
    }
  } else {
    if (typeof secret === "string") payload = { clientSecret: secret };
    else if (!("clientSecret" in secret)) issues.push({ path, message: "an OAuth client secret is {clientSecret}" });
    else payload = secret;
  }
  if (payload && !issues.length) {
    const parts = typeof payload === "string" ? [payload] : "clientSecret" in payload ? [payload.clientSecret] : [payload.username, payload.password];
    if (parts.every((s) => s.trim() === "")) issues.push({ path, message: "must not be empty" });
    else if (Buffer.byteLength(parts.join(""), "utf8") > MAX_SECRET_BYTES) issues.push({ path, message: `must be at most ${MAX_SECRET_BYTES / 1024} KiB` });
    else if (parts.some(hasControl)) issues.push({ path, message: "must not contain line breaks or NUL characters" });
  }
  return { payload: issues.length ? undefined : payload, issues };
}

function sealedSecretOrThrow(kind: CredentialKind, secret: SecretPayload): SecretPayload {
  const { payload, issues } = checkSecret(kind, secret);
  if (issues.length || !payload) throw invalid(issues);
  return payload;
}

// ---------------------------------------------------------------- reading

/** Entry metadata as admins see it: never a secret, ciphertext or wrapped key. */
export function publicEntry(e: VaultEntry, versions: VaultVersion[], extra: { serverName?: string; serverTenantId?: string; tenantName?: string | null; upstreamUrl?: string } = {}, now = new Date()) {
  const current = versions.find((v) => v.version === e.currentVersion && v.status === "current");
  const since = current ? (current.activatesAt ?? current.createdAt) : e.createdAt;
  return {
    id: e.id,
    serverId: e.serverId,
    serverName: extra.serverName,
    tenantId: e.tenantId,
    tenantName: extra.tenantName ?? null,
    /** Whose admins manage it: its tenant, or for a shared entry the server's owning tenant. */
    adminTenantId: e.tenantId ?? extra.serverTenantId ?? null,
    name: e.name,
    kind: e.kind,
    placement: e.placement,
    oauth: e.oauth,
    notes: e.notes,
    owner: e.owner,
    status: e.status,
    /** The upstream origin the secret was stored or last confirmed for. */
    boundOrigin: e.boundOrigin,
    /** The server's upstream origin now. */
    upstreamOrigin: extra.upstreamUrl !== undefined ? upstreamOrigin(extra.upstreamUrl) : null,
    /** True while the two differ: agents get no secret until a vault writer re-enters it or confirms it for the new origin. */
    suspended: e.status === "active" && extra.upstreamUrl !== undefined && isSuspended(e, extra.upstreamUrl),
    currentVersion: e.currentVersion,
    fingerprint: current?.fingerprint ?? null,
    lastChars: current?.lastChars ?? null,
    currentSince: since.toISOString(),
    ageDays: Math.max(0, Math.floor((now.getTime() - since.getTime()) / 86_400_000)),
    rotationIntervalDays: e.rotationIntervalDays,
    nextRotationAt: e.nextRotationAt?.toISOString() ?? null,
    rotationDue: e.status === "active" && !!e.nextRotationAt && e.nextRotationAt <= now,
    createdBy: e.createdBy,
    createdAt: e.createdAt.toISOString(),
    updatedAt: e.updatedAt.toISOString(),
    versions: [...versions]
      .sort((a, b) => b.version - a.version)
      .map((v) => ({
        version: v.version,
        // A grace version past its end is retired even before the maintenance job marks it.
        status: v.status === "grace" && v.graceUntil && v.graceUntil <= now ? ("retired" as const) : v.status,
        fingerprint: v.fingerprint,
        lastChars: v.lastChars,
        kekId: v.kekId,
        activatesAt: v.activatesAt?.toISOString() ?? null,
        graceUntil: v.graceUntil?.toISOString() ?? null,
        retiredAt: (v.retiredAt ?? (v.status === "grace" && v.graceUntil && v.graceUntil <= now ? v.graceUntil : null))?.toISOString() ?? null,
        /** The upstream origin this version was stored or confirmed for (null: stored before versions recorded it). */
        boundOrigin: v.boundOrigin,
        /** Why this version cannot be made current again (lib/vault/eligibility.ts), or null when it can. */
        cannotRestore:
          e.status !== "active"
            ? "The entry is retired"
            : extra.upstreamUrl !== undefined
              ? rollbackProblem(v, e.currentVersion, upstreamOrigin(extra.upstreamUrl), now)
              : "The server's upstream is unknown",
        createdBy: v.createdBy,
        createdAt: v.createdAt.toISOString(),
      })),
  };
}
export type PublicEntry = ReturnType<typeof publicEntry>;

export interface LoadedEntry {
  entry: VaultEntry;
  server: typeof servers.$inferSelect;
  serverTenantIds: string[];
  /** The tenant whose admins manage the entry (the server's owner for shared entries); also the trail's tenant. */
  adminTenant: string;
}

async function serverTenantIds(db: Db, server: { id: string; tenantId: string }): Promise<string[]> {
  const rows = await db.select({ t: serverTenants.tenantId }).from(serverTenants).where(eq(serverTenants.serverId, server.id));
  return [server.tenantId, ...rows.map((r) => r.t).filter((t) => t !== server.tenantId)];
}

function readable(actor: Actor, entry: Pick<VaultEntry, "tenantId">, tenantIds: string[]): boolean {
  return entry.tenantId ? can(actor, "servers.read", entry.tenantId) : tenantIds.some((t) => can(actor, "servers.read", t));
}

/** Loads an entry and authorizes against its own tenant: 404 if unreadable, 403 without vault.write for writes. */
export async function loadEntry(ctx: Ctx, entryId: string, write: boolean, lock = false): Promise<LoadedEntry> {
  const q = ctx.db.select().from(vaultEntries).where(eq(vaultEntries.id, entryId));
  const [entry] = lock ? await q.for("update") : await q;
  if (!entry) throw notFound("Vault entry");
  const [server] = await ctx.db.select().from(servers).where(eq(servers.id, entry.serverId));
  if (!server) throw notFound("Vault entry");
  const tenantIds = await serverTenantIds(ctx.db, server);
  if (!readable(ctx.actor, entry, tenantIds)) throw notFound("Vault entry");
  const adminTenant = entry.tenantId ?? server.tenantId;
  if (write && !can(ctx.actor, "vault.write", adminTenant)) throw forbidden("You need the vault.write permission in this entry's tenant");
  return { entry, server, serverTenantIds: tenantIds, adminTenant };
}

/**
 * What a version becoming current now leaves behind (rotate now, make an
 * earlier version current again): a pending scheduled version is cancelled,
 * and the current one enters its grace period (`graceSeconds`; 0: retired at
 * once). Returns both, and when the grace ends, for the trail.
 */
export async function supersedeCurrent(db: Db, versions: readonly VaultVersion[], graceSeconds: number, now: Date) {
  const scheduled = versions.find((v) => v.status === "scheduled");
  if (scheduled) await db.update(vaultVersions).set({ status: "retired", retiredAt: now }).where(eq(vaultVersions.id, scheduled.id));
  const prev = versions.find((v) => v.status === "current");
  const graceUntil = new Date(now.getTime() + graceSeconds * 1000);
  if (prev) {
    await db
      .update(vaultVersions)
      .set(graceSeconds > 0 ? { status: "grace", graceUntil } : { status: "retired", graceUntil: now, retiredAt: now })
      .where(eq(vaultVersions.id, prev.id));
  }
  return { prev, scheduled, graceUntil };
}

export async function versionsOf(db: Db, entryId: string) {
  return db.select().from(vaultVersions).where(eq(vaultVersions.entryId, entryId)).orderBy(desc(vaultVersions.version));
}

export async function namesOf(db: Db, e: VaultEntry, server: { name: string; tenantId: string; upstreamUrl: string }) {
  const [t] = e.tenantId ? await db.select({ name: tenants.name }).from(tenants).where(eq(tenants.id, e.tenantId)) : [];
  return { serverName: server.name, serverTenantId: server.tenantId, tenantName: t?.name ?? null, upstreamUrl: server.upstreamUrl };
}

/** One entry with its versions (metadata only). */
export async function getEntry(ctx: Ctx, entryId: string): Promise<PublicEntry> {
  const { entry, server } = await loadEntry(ctx, entryId, false);
  return publicEntry(entry, await versionsOf(ctx.db, entry.id), await namesOf(ctx.db, entry, server));
}

/** Entries the actor can read, by server and tenant (metadata only). */
export async function listEntries(ctx: Ctx, q: { serverId?: string; tenantId?: string } = {}): Promise<{ items: PublicEntry[] }> {
  const filters = [];
  if (q.serverId) filters.push(eq(vaultEntries.serverId, q.serverId));
  if (q.tenantId) filters.push(or(eq(vaultEntries.tenantId, q.tenantId), isNull(vaultEntries.tenantId))!);
  const rows = await ctx.db
    .select({ entry: vaultEntries, serverName: servers.name, serverTenant: servers.tenantId, upstreamUrl: servers.upstreamUrl, tenantName: tenants.name })
    .from(vaultEntries)
    .innerJoin(servers, eq(servers.id, vaultEntries.serverId))
    .leftJoin(tenants, eq(tenants.id, vaultEntries.tenantId))
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(asc(servers.name), sql`${vaultEntries.tenantId} nulls first`, asc(vaultEntries.id));
  const serverIds = [...new Set(rows.map((r) => r.entry.serverId))];
  const access = serverIds.length ? await ctx.db.select().from(serverTenants).where(inArray(serverTenants.serverId, serverIds)) : [];
  const visible = rows.filter((r) => {
    const tenantIds = [r.serverTenant, ...access.filter((a) => a.serverId === r.entry.serverId).map((a) => a.tenantId)];
    // A tenant filter also keeps shared entries only on servers that tenant may use.
    if (q.tenantId && r.entry.tenantId === null && !tenantIds.includes(q.tenantId)) return false;
    return seesAllTenants(ctx.actor) || readable(ctx.actor, r.entry, tenantIds);
  });
  const ids = visible.map((r) => r.entry.id);
  const versions = ids.length ? await ctx.db.select().from(vaultVersions).where(inArray(vaultVersions.entryId, ids)) : [];
  const now = new Date();
  return {
    items: visible.map((r) =>
      publicEntry(
        r.entry,
        versions.filter((v) => v.entryId === r.entry.id),
        { serverName: r.serverName, serverTenantId: r.serverTenant, tenantName: r.tenantName, upstreamUrl: r.upstreamUrl },
        now,
      ),
    ),
  };
}

// ---------------------------------------------------------------- writing

export const addDays = (d: Date, days: number | null | undefined) => (days ? new Date(d.getTime() + days * 86_400_000) : null);
export const trailVersion = (v: { version: number; fingerprint: string; lastChars: string }) => ({ version: v.version, fingerprint: v.fingerprint, lastChars: v.lastChars });
const trailEntry = (e: VaultEntry) => ({
  name: e.name,
  kind: e.kind,
  serverId: e.serverId,
  tenantId: e.tenantId,
  placement: e.placement,
  oauth: e.oauth,
  notes: e.notes,
  owner: e.owner,
  rotationIntervalDays: e.rotationIntervalDays,
  status: e.status,
  currentVersion: e.currentVersion,
});

/** Creates an entry with version 1 current. Needs vault.write in the entry's tenant (shared entries: the server's owning tenant). */
export async function createEntry(ctx: Ctx, raw: CreateEntryInput, kek: Kek): Promise<PublicEntry> {
  const input = parse(createEntryInput, raw);
  const { server, tenantIds } = await loadServer(ctx, input.serverId, "servers.read");
  const issues: FieldIssue[] = [];
  if (input.tenantId !== null) {
    if (!can(ctx.actor, "servers.read", input.tenantId)) issues.push({ path: "tenantId", message: "unknown tenant" });
    else if (!tenantIds.includes(input.tenantId)) issues.push({ path: "tenantId", message: "this tenant may not use the server" });
  }
  const adminTenant = input.tenantId ?? server.tenantId;
  if (!issues.length && !can(ctx.actor, "vault.write", adminTenant)) throw forbidden("You need the vault.write permission in this tenant");
  const placement = defaultPlacement(input.kind, input.placement);
  issues.push(...placementIssues(input.kind, placement));
  const isOAuth = input.kind === "oauth_client_credentials" || input.kind === "oauth_token_exchange" || input.kind === "oauth_user_brokered";
  issues.push(...brokeredEntryIssues(input.kind, input.oauth, placement));
  if (isOAuth && !input.oauth) issues.push({ path: "oauth", message: `is required for ${input.kind} (tokenUrl, clientId)` });
  if (input.kind === "oauth_token_exchange" && input.oauth && !input.oauth.audience)
    issues.push({ path: "oauth.audience", message: "is required for token exchange: the upstream resource the exchanged token is for" });
  if (input.kind === "oauth_token_exchange" && placement && (placement.in !== "header" || placement.name.toLowerCase() !== "authorization"))
    issues.push({ path: "placement", message: "an exchanged token goes into the Authorization header" });
  if (!isOAuth && input.oauth) issues.push({ path: "oauth", message: `only an OAuth entry has OAuth settings, not a ${input.kind}` });
  issues.push(...checkSecret(input.kind, input.secret).issues);
  if (issues.length) throw invalid(issues);
  const payload = sealedSecretOrThrow(input.kind, input.secret);

  const id = newId("vaultEntry");
  const now = new Date();
  try {
    return await ctx.db.transaction(async (tx) => {
      const [existing] = await tx
        .select({ id: vaultEntries.id, status: vaultEntries.status })
        .from(vaultEntries)
        .where(and(eq(vaultEntries.serverId, server.id), input.tenantId === null ? isNull(vaultEntries.tenantId) : eq(vaultEntries.tenantId, input.tenantId)));
      if (existing?.status === "active") {
        throw conflict(`This server already has an entry for ${input.tenantId === null ? "all tenants (shared)" : "this tenant"} (${existing.id}): rotate it instead`, "tenantId");
      }
      // A retired entry holds the (server, tenant) slot: a new entry replaces it (its history stays in the trail).
      if (existing) await tx.delete(vaultEntries).where(eq(vaultEntries.id, existing.id));
      const [entry] = await tx
        .insert(vaultEntries)
        .values({
          id,
          serverId: server.id,
          tenantId: input.tenantId,
          name: input.name,
          kind: input.kind,
          placement: placement!,
          oauth: input.oauth ?? null,
          notes: input.notes,
          owner: input.owner,
          currentVersion: 1,
          rotationIntervalDays: input.rotationIntervalDays ?? null,
          nextRotationAt: addDays(now, input.rotationIntervalDays),
          // Bound to the upstream it is stored for: another origin later suspends it (lib/vault/origin.ts).
          boundOrigin: upstreamOrigin(server.upstreamUrl),
          createdBy: ctx.actor.label,
        })
        .returning();
      const sealed = sealSecret(kek, id, 1, payload);
      const [v] = await tx
        .insert(vaultVersions)
        .values({ id: newId("vaultVersion"), entryId: id, version: 1, status: "current", ...sealed, boundOrigin: upstreamOrigin(server.upstreamUrl), activatesAt: now, createdBy: ctx.actor.label })
        .returning();
      await recordEvent(tx, ctx.actor, {
        action: "vault.create",
        targetType: "vault_entry",
        targetId: id,
        tenantId: adminTenant,
        after: { ...trailEntry(entry!), ...trailVersion(v!), replacedRetired: existing?.id ?? null },
      });
      await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${id} created`);
      return publicEntry(entry!, [v!], await namesOf(tx, entry!, server), now);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict("This server already has an entry for this tenant: rotate it instead", "tenantId");
    throw err;
  }
}

/**
 * Adds a version. Now: it becomes current and the previous current version
 * stays valid for `graceSeconds` (0: retired at once). With `activateAt` in
 * the future: it is scheduled, and vaultMaintenance makes it current then.
 */
export async function rotateEntry(ctx: Ctx, entryId: string, raw: RotateEntryInput, kek: Kek): Promise<PublicEntry> {
  const input = parse(rotateEntryInput, raw);
  const now = new Date();
  return ctx.db.transaction(async (tx) => {
    const tctx = { db: tx, actor: ctx.actor };
    const { entry, server, adminTenant } = await loadEntry(tctx, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is retired: it cannot be rotated (create a new entry instead)");
    const payload = sealedSecretOrThrow(entry.kind, input.secret);
    const versions = await versionsOf(tx, entry.id);
    const version = (versions[0]?.version ?? 0) + 1;
    const scheduled = versions.find((v) => v.status === "scheduled");
    const sealed = sealSecret(kek, entry.id, version, payload);
    // Each version records the origin it was entered for (making it current again later is refused for another origin).
    const common = { id: newId("vaultVersion"), entryId: entry.id, version, ...sealed, boundOrigin: upstreamOrigin(server.upstreamUrl), createdBy: ctx.actor.label };

    if (input.activateAt && input.activateAt > now) {
      if (scheduled) throw conflict(`Version ${scheduled.version} is already scheduled for ${scheduled.activatesAt?.toISOString()}: rotate now, or wait for it`, "activateAt");
      // For a scheduled version graceUntil holds when the then-current version's grace will end.
      const graceUntil = new Date(input.activateAt.getTime() + input.graceSeconds * 1000);
      await tx.insert(vaultVersions).values({ ...common, status: "scheduled", activatesAt: input.activateAt, graceUntil });
      await recordEvent(tx, ctx.actor, {
        action: "vault.schedule",
        targetType: "vault_entry",
        targetId: entry.id,
        tenantId: adminTenant,
        after: { ...trailVersion({ version, ...sealed }), activatesAt: input.activateAt.toISOString(), graceSeconds: input.graceSeconds },
      });
    } else {
      // Rotating now supersedes a pending scheduled version.
      const { prev, graceUntil } = await supersedeCurrent(tx, versions, input.graceSeconds, now);
      await tx.insert(vaultVersions).values({ ...common, status: "current", activatesAt: now });
      // Re-entering the secret binds it to the upstream it is entered for (and so lifts a suspension).
      const boundOrigin = upstreamOrigin(server.upstreamUrl);
      await tx
        .update(vaultEntries)
        .set({ currentVersion: version, nextRotationAt: addDays(now, entry.rotationIntervalDays), boundOrigin, updatedAt: now })
        .where(eq(vaultEntries.id, entry.id));
      await recordEvent(tx, ctx.actor, {
        action: "vault.rotate",
        targetType: "vault_entry",
        targetId: entry.id,
        tenantId: adminTenant,
        before: prev ? { version: prev.version, fingerprint: prev.fingerprint, boundOrigin: entry.boundOrigin } : { boundOrigin: entry.boundOrigin },
        after: {
          ...trailVersion({ version, ...sealed }),
          boundOrigin,
          previousGraceUntil: prev && input.graceSeconds > 0 ? graceUntil.toISOString() : null,
          cancelledScheduled: scheduled?.version ?? null,
        },
      });
      await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id} rotated to version ${version}`);
    }
    const [fresh] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, entry.id));
    return publicEntry(fresh!, await versionsOf(tx, entry.id), await namesOf(tx, fresh!, server), now);
  });
}

/** Retires an entry and every version of it: agents stop using it with the next live bundle. */
export async function retireEntry(ctx: Ctx, entryId: string, kek: Kek): Promise<PublicEntry> {
  const now = new Date();
  return ctx.db.transaction(async (tx) => {
    const { entry, server, adminTenant } = await loadEntry({ db: tx, actor: ctx.actor }, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is already retired");
    await tx.update(vaultEntries).set({ status: "retired", nextRotationAt: null, updatedAt: now }).where(eq(vaultEntries.id, entry.id));
    await tx
      .update(vaultVersions)
      .set({ status: "retired", retiredAt: now })
      .where(and(eq(vaultVersions.entryId, entry.id), inArray(vaultVersions.status, ["scheduled", "current", "grace"])));
    await recordEvent(tx, ctx.actor, {
      action: "vault.retire",
      targetType: "vault_entry",
      targetId: entry.id,
      tenantId: adminTenant,
      before: { status: "active", currentVersion: entry.currentVersion },
      after: { status: "retired" },
    });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id} retired`);
    const [fresh] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, entry.id));
    return publicEntry(fresh!, await versionsOf(tx, entry.id), await namesOf(tx, fresh!, server), now);
  });
}

/**
 * Confirms a suspended entry's secret for its server's new upstream origin,
 * without re-entering it. Needs vault.write in the entry's tenant (the
 * server's owner for a shared entry): the owner of the server cannot confirm
 * another tenant's secret. `origin` must be the current upstream origin.
 */
export async function confirmOrigin(ctx: Ctx, entryId: string, raw: ConfirmOriginInput, kek: Kek): Promise<PublicEntry> {
  const input = parse(confirmOriginInput, raw);
  const now = new Date();
  return ctx.db.transaction(async (tx) => {
    const { entry, server, adminTenant } = await loadEntry({ db: tx, actor: ctx.actor }, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is retired");
    // The server row is read again under lock: the confirmation applies to the upstream as it is at commit.
    const [current] = await tx.select({ upstreamUrl: servers.upstreamUrl }).from(servers).where(eq(servers.id, server.id)).for("share");
    const origin = upstreamOrigin(current!.upstreamUrl);
    if (!isSuspended(entry, current!.upstreamUrl)) throw conflict(`This entry is not suspended: it is bound to ${entry.boundOrigin}, the server's upstream origin`);
    if (input.origin !== origin) throw conflict(`The server's upstream origin is now ${origin}, not ${input.origin.slice(0, 300)}: review it and confirm again`, "origin");
    await tx.update(vaultEntries).set({ boundOrigin: origin, updatedAt: now }).where(eq(vaultEntries.id, entry.id));
    // The confirmation is for the current secret: only that version is bound to the new origin.
    await tx
      .update(vaultVersions)
      .set({ boundOrigin: origin })
      .where(and(eq(vaultVersions.entryId, entry.id), eq(vaultVersions.version, entry.currentVersion)));
    await recordEvent(tx, ctx.actor, {
      action: "vault.confirm_origin",
      targetType: "vault_entry",
      targetId: entry.id,
      tenantId: adminTenant,
      before: { boundOrigin: entry.boundOrigin, suspended: true },
      after: { boundOrigin: origin, suspended: false, version: entry.currentVersion },
    });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id} confirmed for ${origin}`);
    const [fresh] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, entry.id));
    return publicEntry(fresh!, await versionsOf(tx, entry.id), await namesOf(tx, fresh!, { ...server, upstreamUrl: current!.upstreamUrl }), now);
  });
}

/** Changes an entry's metadata (never its secret: that is a rotation). */
export async function updateEntry(ctx: Ctx, entryId: string, raw: UpdateEntryInput, kek: Kek): Promise<PublicEntry> {
  const input = parse(updateEntryInput, raw);
  const now = new Date();
  return ctx.db.transaction(async (tx) => {
    const { entry, server, adminTenant } = await loadEntry({ db: tx, actor: ctx.actor }, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is retired: it cannot be changed");
    if (input.placement) {
      const issues = placementIssues(entry.kind, input.placement);
      if (issues.length) throw invalid(issues);
    }
    const versions = await versionsOf(tx, entry.id);
    const current = versions.find((v) => v.status === "current");
    const since = current ? (current.activatesAt ?? current.createdAt) : entry.createdAt;
    const changes: Partial<VaultEntry> = { updatedAt: now };
    if (input.name !== undefined) changes.name = input.name;
    if (input.notes !== undefined) changes.notes = input.notes;
    if (input.owner !== undefined) changes.owner = input.owner;
    if (input.placement !== undefined) changes.placement = input.placement;
    if (input.rotationIntervalDays !== undefined) {
      changes.rotationIntervalDays = input.rotationIntervalDays;
      changes.nextRotationAt = addDays(since, input.rotationIntervalDays);
    }
    const [fresh] = await tx.update(vaultEntries).set(changes).where(eq(vaultEntries.id, entry.id)).returning();
    await recordEvent(tx, ctx.actor, { action: "vault.update", targetType: "vault_entry", targetId: entry.id, tenantId: adminTenant, before: trailEntry(entry), after: trailEntry(fresh!) });
    if (input.placement) await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id} placement changed`);
    return publicEntry(fresh!, versions, await namesOf(tx, fresh!, server), now);
  });
}

// ---------------------------------------------------------------- maintenance

/**
 * Activates scheduled versions whose time has come (the current one enters its
 * grace period) and retires grace versions past their end. Each entry in its
 * own transaction, republishing its server's live bundles.
 */
export async function vaultMaintenance(db: Db, kek: Kek, now = new Date()): Promise<{ activated: number; retired: number }> {
  let activated = 0;
  let retired = 0;
  const due = await db
    .select()
    .from(vaultVersions)
    .where(and(eq(vaultVersions.status, "scheduled"), lte(vaultVersions.activatesAt, now)))
    .orderBy(asc(vaultVersions.activatesAt));
  for (const s of due) {
    const done = await db.transaction(async (tx) => {
      const [entry] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, s.entryId)).for("update");
      const [v] = await tx.select().from(vaultVersions).where(eq(vaultVersions.id, s.id));
      if (!entry || v?.status !== "scheduled") return false;
      if (entry.status === "retired") {
        await tx.update(vaultVersions).set({ status: "retired", retiredAt: now }).where(eq(vaultVersions.id, v.id));
        return false;
      }
      const graceUntil = v.graceUntil && v.graceUntil > now ? v.graceUntil : null;
      const prev = (
        await tx
          .select()
          .from(vaultVersions)
          .where(and(eq(vaultVersions.entryId, entry.id), eq(vaultVersions.status, "current")))
      )[0];
      if (prev) {
        await tx
          .update(vaultVersions)
          .set(graceUntil ? { status: "grace", graceUntil } : { status: "retired", graceUntil: now, retiredAt: now })
          .where(eq(vaultVersions.id, prev.id));
      }
      await tx.update(vaultVersions).set({ status: "current", graceUntil: null }).where(eq(vaultVersions.id, v.id));
      await tx
        .update(vaultEntries)
        .set({ currentVersion: v.version, nextRotationAt: addDays(now, entry.rotationIntervalDays), updatedAt: now })
        .where(eq(vaultEntries.id, entry.id));
      await recordEvent(tx, "system", {
        action: "vault.activate",
        targetType: "vault_entry",
        targetId: entry.id,
        tenantId: entry.tenantId ?? (await tx.select({ t: servers.tenantId }).from(servers).where(eq(servers.id, entry.serverId)))[0]?.t ?? null,
        before: prev ? { version: prev.version } : null,
        after: { ...trailVersion(v), previousGraceUntil: graceUntil?.toISOString() ?? null },
      });
      await republishLiveBundles(tx, "system", kek, [entry.serverId], `vault entry ${entry.id}: scheduled version ${v.version} activated`);
      return true;
    });
    if (done) activated++;
  }
  const expired = await db
    .select({ v: vaultVersions, serverId: vaultEntries.serverId, tenantId: vaultEntries.tenantId, serverTenant: servers.tenantId })
    .from(vaultVersions)
    .innerJoin(vaultEntries, eq(vaultEntries.id, vaultVersions.entryId))
    .innerJoin(servers, eq(servers.id, vaultEntries.serverId))
    .where(and(eq(vaultVersions.status, "grace"), lte(vaultVersions.graceUntil, now)));
  for (const r of expired) {
    const done = await db.transaction(async (tx) => {
      const [changed] = await tx
        .update(vaultVersions)
        .set({ status: "retired", retiredAt: r.v.graceUntil ?? now })
        .where(and(eq(vaultVersions.id, r.v.id), eq(vaultVersions.status, "grace")))
        .returning({ id: vaultVersions.id });
      if (!changed) return false;
      await recordEvent(tx, "system", {
        action: "vault.version_retire",
        targetType: "vault_entry",
        targetId: r.v.entryId,
        tenantId: r.tenantId ?? r.serverTenant,
        after: { version: r.v.version, graceUntil: r.v.graceUntil?.toISOString() ?? null },
      });
      await republishLiveBundles(tx, "system", kek, [r.serverId], `vault entry ${r.v.entryId}: version ${r.v.version} grace ended`);
      return true;
    });
    if (done) retired++;
  }
  return { activated, retired };
}

/**
 * Runs vaultMaintenance every `everyMs` (15 s) on an unref'd timer, once per interval across the
 * control-plane replicas sharing the database (lib/jobs/scheduler.ts); errors are logged, never thrown.
 * Returns a stop function.
 */
export function startVaultMaintenance(db: Db, kek: Kek, everyMs = 15_000): () => void {
  return startJob(db, { name: "vault.maintenance", everyMs, run: (tx) => vaultMaintenance(tx, kek) }, (r) => {
    if (r.status === "ran" && (r.result.activated || r.result.retired)) console.log(`[mandate] vault: ${r.result.activated} version(s) activated, ${r.result.retired} retired`);
  });
}

/** Rewraps every data key and signing key sealed with a previous KEK into the active one (owners). */
export async function rewrapKeys(ctx: Ctx, keyring: readonly Kek[]) {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only owners can rewrap the key-encryption keys");
  const counts = await rewrapAll(ctx.db, keyring);
  await recordEvent(ctx.db, ctx.actor, { action: "vault.rewrap", targetType: "keyring", targetId: keyring[0]!.id, tenantId: null, after: counts });
  return { activeKekId: keyring[0]!.id, ...counts };
}

// ---------------------------------------------------------------- broker

export interface ResolvedCredential {
  entryId: string;
  kind: CredentialKind;
  placement: CredentialPlacement;
  version: number;
  secret: SecretPayload;
  oauth?: OAuthClientConfig;
  ttlSeconds: number;
  graceUntil?: string;
}

/**
 * The secret an agent injects for (server, tenant): the tenant's own entry,
 * else the server's shared one. Only for an agent whose fleet serves the
 * server and a tenant allowed on it (403 otherwise, unknown servers included,
 * so other fleets learn nothing). Recorded in the trail without the value.
 */
export async function resolveCredential(
  db: Db,
  agent: Pick<Agent, "id" | "name" | "fleetId">,
  raw: z.input<typeof resolveCredentialInput>,
  keyring: readonly Kek[],
  now = new Date(),
): Promise<ResolvedCredential> {
  const q = parse(resolveCredentialInput, raw);
  // Two independent reads in parallel (the authorization and the candidate entries with their version); the answer is decided only after both.
  const [[served], candidates] = await Promise.all([
    db
      .select({
        owner: servers.tenantId,
        upstreamUrl: servers.upstreamUrl,
        allowed: sql<boolean>`exists (select 1 from ${serverTenants} where ${serverTenants.serverId} = ${servers.id} and ${serverTenants.tenantId} = ${q.tenantId})`,
      })
      .from(fleetServers)
      .innerJoin(servers, eq(servers.id, fleetServers.serverId))
      .where(and(eq(fleetServers.fleetId, agent.fleetId), eq(fleetServers.serverId, q.serverId))),
    db
      .select({ entry: vaultEntries, v: vaultVersions })
      .from(vaultEntries)
      .leftJoin(vaultVersions, and(eq(vaultVersions.entryId, vaultEntries.id), q.version === undefined ? eq(vaultVersions.version, vaultEntries.currentVersion) : eq(vaultVersions.version, q.version)))
      .where(and(eq(vaultEntries.serverId, q.serverId), eq(vaultEntries.status, "active"), or(eq(vaultEntries.tenantId, q.tenantId), isNull(vaultEntries.tenantId)))),
  ]);
  if (!served) throw forbidden("This agent's fleet does not serve this server");
  if (served.owner !== q.tenantId && !served.allowed) throw forbidden("This tenant may not use this server");
  const picked = candidates.find((c) => c.entry.tenantId === q.tenantId) ?? candidates.find((c) => c.entry.tenantId === null);
  if (!picked) throw notFound("Credential for this server and tenant");
  const { entry, v } = picked;
  // Brokered per-user OAuth: the client secret stays with the control plane (agents get users' access tokens, lib/connections).
  if (entry.kind === "oauth_user_brokered") throw forbidden("This credential is brokered per user: ask POST /api/v1/agent/connections/token");
  // Never the tenant's own entry's fallback (shared or none): a suspended entry fails closed.
  if (isSuspended(entry, served.upstreamUrl)) {
    throw conflict(
      `This credential is suspended: it was stored for ${entry.boundOrigin || "another upstream"}, and the server's upstream is now ${upstreamOrigin(served.upstreamUrl)}. A vault writer must re-enter or confirm it.`,
    );
  }
  const version = q.version ?? entry.currentVersion;
  const usable = v && (v.status === "current" || (v.status === "grace" && v.graceUntil !== null && v.graceUntil > now));
  if (!v || !usable) {
    throw new AppError(
      "not_found",
      !v
        ? `Version ${version} of this credential does not exist`
        : v.status === "scheduled"
          ? `Version ${version} of this credential is not active yet`
          : `Version ${version} of this credential is retired`,
    );
  }
  const secret = openSecret(keyring, entry.id, v.version, v);
  await recordEvent(
    db,
    { type: "agent", id: agent.id, label: agent.name },
    { action: "vault.resolve", targetType: "vault_entry", targetId: entry.id, tenantId: q.tenantId, after: { version: v.version, serverId: q.serverId, fleetId: agent.fleetId } },
  );
  return {
    entryId: entry.id,
    kind: entry.kind,
    placement: entry.placement,
    version: v.version,
    secret,
    ...(entry.oauth ? { oauth: entry.oauth } : {}),
    ttlSeconds: v.status === "grace" && v.graceUntil ? Math.max(1, Math.min(CREDENTIAL_TTL_SECONDS, Math.floor((v.graceUntil.getTime() - now.getTime()) / 1000))) : CREDENTIAL_TTL_SECONDS,
    ...(v.status === "grace" && v.graceUntil ? { graceUntil: v.graceUntil.toISOString() } : {}),
  };
}
