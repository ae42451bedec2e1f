import "server-only";
import { and, desc, eq, gt, inArray, isNull, lt, or, sql } from "drizzle-orm";
import * as oauth from "oauth4webapi";
import { z } from "zod";
import type { Db } from "@/db/client";
import {
  connectRequests,
  fleetServers,
  servers,
  serverTenants,
  tenants,
  upstreamConnections,
  users,
  vaultEntries,
  vaultVersions,
  type Agent,
  type UpstreamConnection,
  type VaultEntry,
} from "@/db/schema";
import { can, seesAllTenants, type Actor } from "@/lib/auth/permissions";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { AppError, conflict, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { createEgressFetch, EgressError } from "@/lib/net/egress";
import { egressPolicy } from "@/lib/net/policy";
import { recordEvent, type AgentActor } from "@/lib/trail/record";
import { openSecret, sealSecret } from "@/lib/vault/crypto";
import { clientSecretOf } from "@/lib/enforcement/upstream-credential";
import { connectionTokenInput, connectPageUrl, type connectReasons, MAX_AGENT_TOKEN_TTL_SECONDS, type ConnectionTokenAnswer } from "./contract";
import { checkState, issueState, nonceHash, pkceVerifier } from "./state";

/*
 * Brokered per-user upstream OAuth (issue 13, docs/upstreams.md): the control
 * plane runs the authorization code flow with PKCE against the upstream's AS
 * for one (tenant, server, user), keeps the refresh and access token sealed
 * (envelope encryption, lib/vault/crypto.ts), refreshes on demand, and hands
 * agents only short-lived access tokens. The tenant and user of a flow come
 * from the request row the agent filed (from a validated token) and are
 * checked against the signed-in user's SSO identity; never from the URL.
 */

/** A connect request (its page) is valid this long after the agent filed it. */
export const REQUEST_TTL_MS = 15 * 60_000;
/** The access token is refreshed when it has less than this left. */
const REFRESH_MARGIN_MS = 60_000;
const TOKEN_FETCH = { timeoutMs: 10_000, maxBytes: 256 * 1024, requireHttps: true };

export interface ConnectDeps {
  kek: Kek;
  keyring: readonly Kek[];
  /** The dashboard's public origin (NEXTAUTH_URL): connect pages and the redirect URI. */
  origin: string;
}

export const redirectUri = (origin: string) => `${origin.replace(/\/+$/, "")}/api/v1/admin/connections/callback`;

interface SealedTokens {
  accessToken: string;
  refreshToken: string | null;
}

type ConnectionEnd = "disconnected" | "revoked" | "broken";

// ---------------------------------------------------------------- shared reads

/** The oauth_user_brokered entry that applies to (server, tenant): the tenant's own, else the shared one; with its current version. */
async function brokeredEntry(db: Db, serverId: string, tenantId: string) {
  const rows = await db
    .select({ entry: vaultEntries, v: vaultVersions })
    .from(vaultEntries)
    .innerJoin(vaultVersions, and(eq(vaultVersions.entryId, vaultEntries.id), eq(vaultVersions.version, vaultEntries.currentVersion)))
    .where(and(eq(vaultEntries.serverId, serverId), eq(vaultEntries.status, "active"), or(eq(vaultEntries.tenantId, tenantId), isNull(vaultEntries.tenantId))));
  const picked = rows.find((r) => r.entry.tenantId === tenantId) ?? rows.find((r) => r.entry.tenantId === null);
  return picked && picked.entry.kind === "oauth_user_brokered" ? picked : null;
}

/** The token identity (`<issuer>#<subject>`) of a dashboard user who signs in with SSO, the form the agent's principal names users in. */
async function identityOf(db: Db, userId: string): Promise<string | null> {
  const [u] = await db.select({ iss: users.oidcIssuer, sub: users.oidcSubject }).from(users).where(eq(users.id, userId));
  return u?.iss && u.sub ? `${u.iss}#${u.sub}` : null;
}

/** Discovered AS metadata by issuer, for DISCOVERY_TTL_MS. */
const discovered = new Map<string, { as: oauth.AuthorizationServer; until: number }>();
const DISCOVERY_TTL_MS = 5 * 60_000;

/**
 * The upstream AS of an entry: its endpoints as configured; an entry that
 * names only an `issuer` (no authorizationUrl) has its authorization endpoint
 * discovered (OpenID Connect discovery, else RFC 8414) through the egress
 * guard, the issuer in the metadata checked; the entry's tokenUrl stays the
 * token endpoint.
 */
async function asOf(entry: VaultEntry): Promise<oauth.AuthorizationServer> {
  const o = entry.oauth!;
  if (o.authorizationUrl || !o.issuer) return { issuer: o.issuer ?? new URL(o.authorizationUrl ?? o.tokenUrl).origin, authorization_endpoint: o.authorizationUrl, token_endpoint: o.tokenUrl };
  const hit = discovered.get(o.issuer);
  if (hit && hit.until > Date.now()) return { ...hit.as, token_endpoint: o.tokenUrl };
  const issuer = new URL(o.issuer);
  let as: oauth.AuthorizationServer | undefined;
  let last: unknown;
  for (const algorithm of ["oidc", "oauth2"] as const) {
    try {
      as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...httpOptions(), algorithm }));
      break;
    } catch (err) {
      last = err;
    }
  }
  if (!as?.authorization_endpoint)
    throw new AppError(
      "upstream_error",
      `The upstream's authorization server metadata could not be discovered at ${issuer.origin}: ${last ? describeFailure(last).text : "no authorization_endpoint"}`,
    );
  discovered.set(o.issuer, { as, until: Date.now() + DISCOVERY_TTL_MS });
  if (discovered.size > 1000) discovered.delete(discovered.keys().next().value!);
  return { ...as, token_endpoint: o.tokenUrl };
}

function clientAuth(entry: VaultEntry, secret: string): oauth.ClientAuth {
  return entry.oauth!.authMethod === "client_secret_post" ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret);
}

/** oauth4webapi options: every request through the egress guard (no redirects, https except loopback, deadline, capped body). */
function httpOptions(): { [oauth.customFetch]: typeof fetch; [oauth.allowInsecureRequests]: boolean } {
  // http: is allowed by oauth4webapi only because the guard itself refuses plain http except to a loopback host.
  return { [oauth.customFetch]: createEgressFetch({ policy: egressPolicy(), ...TOKEN_FETCH }) as typeof fetch, [oauth.allowInsecureRequests]: true };
}

/** The resource or audience parameter the entry asks tokens for (RFC 8707 `resource` for a URI). */
function audienceParams(entry: VaultEntry): Record<string, string> {
  const a = entry.oauth?.audience;
  if (!a) return {};
  return URL.canParse(a) ? { resource: a } : { audience: a };
}

function seal(kek: Kek, connectionId: string, generation: number, t: SealedTokens) {
  const s = sealSecret(kek, connectionId, generation, JSON.stringify({ a: t.accessToken, r: t.refreshToken }));
  return { ciphertext: s.ciphertext, wrappedKey: s.wrappedKey, kekId: s.kekId };
}

function open(keyring: readonly Kek[], row: UpstreamConnection): SealedTokens {
  if (!row.ciphertext || !row.wrappedKey || !row.kekId) throw new Error(`connection ${row.id} holds no tokens`);
  const clear = openSecret(keyring, row.id, row.generation, { ciphertext: row.ciphertext, wrappedKey: row.wrappedKey, kekId: row.kekId });
  const p = JSON.parse(String(clear)) as { a?: unknown; r?: unknown };
  if (typeof p.a !== "string") throw new Error(`connection ${row.id} is malformed`);
  return { accessToken: p.a, refreshToken: typeof p.r === "string" ? p.r : null };
}

/** A token endpoint failure as the OAuth error code and status only (never a body or token). */
function describeFailure(err: unknown): { code: string | null; text: string } {
  if (err instanceof oauth.ResponseBodyError) return { code: err.error, text: `the upstream's token endpoint answered ${err.status} (${err.error})` };
  if (err instanceof EgressError) return { code: null, text: `the upstream's token endpoint could not be reached: ${err.message}` };
  if (err instanceof oauth.AuthorizationResponseError) return { code: err.error, text: `the upstream's authorization server answered ${err.error}` };
  return { code: null, text: `the upstream's token answer was not usable (${err instanceof Error ? err.name : "error"})` };
}

// ---------------------------------------------------------------- agent side

/**
 * POST /api/v1/agent/connections/token: the user's upstream access token for
 * one call, refreshed here when it is about to expire, or the connect page
 * where the user must go. The agent's fleet must serve the server and the
 * server admit the tenant (checked against the rows).
 */
export async function tokenForAgent(db: Db, agent: Pick<Agent, "id" | "name" | "fleetId">, raw: unknown, deps: ConnectDeps, now = new Date()): Promise<ConnectionTokenAnswer> {
  const q = connectionTokenInput.parse(raw);
  const who: AgentActor = { type: "agent", id: agent.id, label: agent.name };
  const [served] = await db
    .select({
      owner: servers.tenantId,
      shared: sql<boolean>`exists (select 1 from ${serverTenants} where ${serverTenants.serverId} = ${servers.id} and ${serverTenants.tenantId} = ${q.tenantId})`,
    })
    .from(fleetServers)
    .innerJoin(servers, eq(servers.id, fleetServers.serverId))
    .where(and(eq(fleetServers.fleetId, agent.fleetId), eq(fleetServers.serverId, q.serverId)));
  if (!served) throw forbidden("This agent's fleet does not serve this server");
  if (served.owner !== q.tenantId && !served.shared) throw forbidden("This tenant may not use this server");
  const picked = await brokeredEntry(db, q.serverId, q.tenantId);
  if (!picked) throw notFound("Brokered OAuth credential for this server and tenant");
  const [row] = await db
    .select()
    .from(upstreamConnections)
    .where(and(eq(upstreamConnections.tenantId, q.tenantId), eq(upstreamConnections.serverId, q.serverId), eq(upstreamConnections.userKey, q.user)));
  if (!row || row.status !== "active" || row.entryId !== picked.entry.id) {
    const reason = !row || row.status === "active" ? "none" : row.status;
    return fileConnectRequest(db, who, q.tenantId, q.serverId, q.user, reason, deps.origin, now);
  }
  const tokens = open(deps.keyring, row);
  if (row.accessExpiresAt && row.accessExpiresAt.getTime() - now.getTime() > REFRESH_MARGIN_MS) return okAnswer(row, tokens.accessToken, row.accessExpiresAt, now);
  return refresh(db, who, row.id, picked, deps, now);
}

function okAnswer(row: UpstreamConnection, accessToken: string, expiresAt: Date, now: Date): ConnectionTokenAnswer {
  const useUntil = Math.min(expiresAt.getTime() - 30_000, now.getTime() + MAX_AGENT_TOKEN_TTL_SECONDS * 1000);
  return { status: "ok", connectionId: row.id, entryId: row.entryId, accessToken, useUntil: new Date(useUntil).toISOString() };
}

/**
 * Refreshes the access token with the stored refresh token, the row locked
 * so concurrent calls refresh once (a rotating refresh token is used once).
 * A rotated refresh token replaces the old one. `invalid_grant` (revoked or
 * expired at the AS) marks the connection broken: the user is asked to
 * connect again. Other failures answer 502 and keep the connection.
 */
async function refresh(db: Db, who: AgentActor, connectionId: string, picked: NonNullable<Awaited<ReturnType<typeof brokeredEntry>>>, deps: ConnectDeps, now: Date): Promise<ConnectionTokenAnswer> {
  type Outcome = { answer: ConnectionTokenAnswer } | { broken: string } | { again: true };
  const out = await db.transaction(async (tx): Promise<Outcome> => {
    const [row] = await tx.select().from(upstreamConnections).where(eq(upstreamConnections.id, connectionId)).for("update");
    if (!row || row.status !== "active") return { again: true };
    const tokens = open(deps.keyring, row);
    // Another call refreshed while this one waited for the lock.
    if (row.accessExpiresAt && row.accessExpiresAt.getTime() - Date.now() > REFRESH_MARGIN_MS) return { answer: okAnswer(row, tokens.accessToken, row.accessExpiresAt, now) };
    if (!tokens.refreshToken) return { broken: "the access token expired and the upstream gave no refresh token" };
    const secret = clientSecretOf(openSecret(deps.keyring, picked.entry.id, picked.v.version, picked.v));
    if (!secret) throw new AppError("upstream_error", "The brokered OAuth entry has no client secret");
    const as = await asOf(picked.entry);
    const client: oauth.Client = { client_id: picked.entry.oauth!.clientId };
    let got: oauth.TokenEndpointResponse;
    try {
      const res = await oauth.refreshTokenGrantRequest(as, client, clientAuth(picked.entry, secret), tokens.refreshToken, { ...httpOptions(), additionalParameters: audienceParams(picked.entry) });
      got = await oauth.processRefreshTokenResponse(as, client, res);
    } catch (err) {
      const f = describeFailure(err);
      if (f.code === "invalid_grant") return { broken: "the upstream refused the refresh token (invalid_grant)" };
      throw new AppError("upstream_error", `Refreshing the upstream token failed: ${f.text}`);
    }
    const generation = row.generation + 1;
    const fresh: SealedTokens = { accessToken: got.access_token, refreshToken: got.refresh_token ?? tokens.refreshToken };
    const expiresAt = new Date(Date.now() + (got.expires_in ?? 300) * 1000);
    const [saved] = await tx
      .update(upstreamConnections)
      .set({ ...seal(deps.kek, row.id, generation, fresh), generation, accessExpiresAt: expiresAt, refreshedAt: new Date(), updatedAt: new Date(), ...(got.scope ? { scope: got.scope } : {}) })
      .where(eq(upstreamConnections.id, row.id))
      .returning();
    await recordEvent(tx, who, {
      action: "connection.refresh",
      targetType: "upstream_connection",
      targetId: row.id,
      tenantId: row.tenantId,
      after: {
        serverId: row.serverId,
        user: row.userKey,
        generation,
        refreshTokenRotated: Boolean(got.refresh_token && got.refresh_token !== tokens.refreshToken),
        accessExpiresAt: expiresAt.toISOString(),
      },
    });
    return { answer: okAnswer(saved!, fresh.accessToken, expiresAt, now) };
  });
  if ("answer" in out) return out.answer;
  const [row] = await db.select().from(upstreamConnections).where(eq(upstreamConnections.id, connectionId));
  if (!row) throw notFound("Connection");
  if ("broken" in out && row.status === "active") await endConnection(db, who, row, "broken", out.broken, deps.kek);
  return fileConnectRequest(db, who, row.tenantId, row.serverId, row.userKey, "broken" in out ? "broken" : row.status === "active" ? "none" : row.status, deps.origin, now);
}

/** Files (or finds again) the open connect request of (tenant, server, user) and answers where the user connects. */
async function fileConnectRequest(
  db: Db,
  who: AgentActor,
  tenantId: string,
  serverId: string,
  userKey: string,
  reason: (typeof connectReasons)[number],
  origin: string,
  now: Date,
): Promise<ConnectionTokenAnswer> {
  const [open] = await db
    .select()
    .from(connectRequests)
    .where(
      and(
        eq(connectRequests.tenantId, tenantId),
        eq(connectRequests.serverId, serverId),
        eq(connectRequests.userKey, userKey),
        inArray(connectRequests.status, ["open", "started"]),
        gt(connectRequests.expiresAt, now),
      ),
    )
    .orderBy(desc(connectRequests.createdAt))
    .limit(1);
  let row = open;
  if (!row) {
    // Older requests of the same (tenant, server, user) that expired a day ago go: the table stays small.
    await db
      .delete(connectRequests)
      .where(
        and(
          eq(connectRequests.tenantId, tenantId),
          eq(connectRequests.serverId, serverId),
          eq(connectRequests.userKey, userKey),
          lt(connectRequests.expiresAt, new Date(now.getTime() - 24 * 60 * 60_000)),
        ),
      );
    [row] = await db
      .insert(connectRequests)
      .values({ id: newId("connectRequest"), tenantId, serverId, userKey, status: "open", expiresAt: new Date(now.getTime() + REQUEST_TTL_MS) })
      .returning();
    await recordEvent(db, who, {
      action: "connection.requested",
      targetType: "connect_request",
      targetId: row!.id,
      tenantId,
      after: { serverId, user: userKey, reason, expiresAt: row!.expiresAt.toISOString() },
    });
  }
  return { status: "connect", requestId: row!.id, url: connectPageUrl(origin, row!.id), expiresAt: row!.expiresAt.toISOString(), reason };
}

// ---------------------------------------------------------------- the connect flow (dashboard user)

/** Loads a connect request for the signed-in user: it exists for them only if it names their SSO identity (404 otherwise, so ids reveal nothing). */
async function requestForActor(db: Db, actor: Actor, id: string) {
  if (!/^cnr_[0-9a-f]{32}$/.test(id)) throw notFound("Connect request");
  const [r] = await db
    .select({ request: connectRequests, serverName: servers.name, tenantName: tenants.name })
    .from(connectRequests)
    .innerJoin(servers, eq(servers.id, connectRequests.serverId))
    .innerJoin(tenants, eq(tenants.id, connectRequests.tenantId))
    .where(eq(connectRequests.id, id));
  const identity = actor.type === "user" ? await identityOf(db, actor.userId) : null;
  if (r && identity === null) throw forbidden("Sign in with single sign-on as the user who called the tool: a connection belongs to that identity");
  if (!r || identity !== r.request.userKey) throw notFound("Connect request");
  return r;
}

/** What the connect page shows. */
export async function getConnectRequest(ctx: Ctx, id: string, now = new Date()) {
  const r = await requestForActor(ctx.db, ctx.actor, id);
  const expired = r.request.expiresAt <= now && r.request.status !== "completed";
  return {
    id: r.request.id,
    serverId: r.request.serverId,
    serverName: r.serverName,
    tenantId: r.request.tenantId,
    tenantName: r.tenantName,
    user: r.request.userKey,
    status: expired ? ("expired" as const) : r.request.status,
    expiresAt: r.request.expiresAt.toISOString(),
  };
}

/**
 * Starts the authorization code flow of a connect request for the signed-in
 * user (its SSO identity must be the request's user): a fresh nonce, its
 * hash and the user stored on the row, and the upstream AS's authorization
 * URL with `state`, PKCE S256 and the entry's scope and resource.
 */
export async function startConnect(ctx: Ctx, id: string, deps: ConnectDeps, now = new Date()): Promise<{ authorizationUrl: string }> {
  const r = await requestForActor(ctx.db, ctx.actor, id);
  if (r.request.status === "completed") throw conflict("This connection request is already completed");
  if (r.request.expiresAt <= now) throw conflict("This connection request expired; call the tool again for a new link");
  const picked = await brokeredEntry(ctx.db, r.request.serverId, r.request.tenantId);
  if (!picked?.entry.oauth) throw conflict("This server has no brokered OAuth credential any more");
  const authorizationEndpoint = (await asOf(picked.entry)).authorization_endpoint;
  if (!authorizationEndpoint) throw conflict("The brokered OAuth credential names no authorization endpoint");
  const issued = issueState(deps.kek, r.request.id, ctx.actor.userId, now.getTime());
  await ctx.db
    .update(connectRequests)
    .set({ status: "started", nonceHash: nonceHash(issued.nonce), startedBy: ctx.actor.userId, flowExpiresAt: issued.expiresAt })
    .where(eq(connectRequests.id, r.request.id));
  const o = picked.entry.oauth;
  const url = new URL(authorizationEndpoint);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", o.clientId);
  url.searchParams.set("redirect_uri", redirectUri(deps.origin));
  if (o.scope) url.searchParams.set("scope", o.scope);
  url.searchParams.set("state", issued.state);
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(issued.verifier));
  url.searchParams.set("code_challenge_method", "S256");
  for (const [k, v] of Object.entries(audienceParams(picked.entry))) url.searchParams.set(k, v);
  await recordEvent(ctx.db, ctx.actor, {
    action: "connection.start",
    targetType: "connect_request",
    targetId: r.request.id,
    tenantId: r.request.tenantId,
    after: { serverId: r.request.serverId, user: r.request.userKey },
  });
  return { authorizationUrl: url.toString() };
}

export const callbackQuery = z.object({
  state: z.string().max(300).optional(),
  code: z.string().max(4096).optional(),
  iss: z.string().max(2048).optional(),
  error: z.string().max(200).optional(),
  error_description: z.string().max(1000).optional(),
});

/**
 * The redirect back from the upstream AS: the state is checked (MAC for the
 * signed-in user, expiry), the request consumed once (its nonce hash must
 * match and it must still be started by this user), the row's identity
 * checked against the user's again, the code exchanged with the PKCE
 * verifier, and the tokens stored sealed for (tenant, server, user). Agents
 * are told through the live section (an earlier cut stays as it was).
 */
export async function completeConnect(ctx: Ctx, params: URLSearchParams, deps: ConnectDeps, now = new Date()): Promise<{ connectionId: string; serverId: string }> {
  const state = params.get("state") ?? "";
  const checked = checkState(deps.kek, state, ctx.actor.userId, now.getTime());
  if ("problem" in checked) throw new AppError("bad_request", `The connection could not be completed: ${checked.problem}`);
  const r = await requestForActor(ctx.db, ctx.actor, checked.requestId);
  const [consumed] = await ctx.db
    .update(connectRequests)
    .set({ status: "completed", completedAt: now, nonceHash: null })
    .where(
      and(
        eq(connectRequests.id, r.request.id),
        eq(connectRequests.status, "started"),
        eq(connectRequests.nonceHash, nonceHash(checked.nonce)),
        eq(connectRequests.startedBy, ctx.actor.userId),
        gt(connectRequests.flowExpiresAt, now),
      ),
    )
    .returning();
  if (!consumed) throw new AppError("bad_request", "The connection could not be completed: this link was already used or replaced by a newer attempt");
  // From here a failure leaves the request open again (a fresh start), never the same state usable twice.
  const reopen = () => ctx.db.update(connectRequests).set({ status: "open", completedAt: null }).where(eq(connectRequests.id, consumed.id));
  const picked = await brokeredEntry(ctx.db, consumed.serverId, consumed.tenantId);
  if (!picked) {
    await reopen();
    throw conflict("This server has no brokered OAuth credential any more");
  }
  const as = await asOf(picked.entry);
  const client: oauth.Client = { client_id: picked.entry.oauth!.clientId };
  const callbackParams = new URLSearchParams(params);
  // Without a configured issuer there is no expected `iss` to compare (RFC 9207); with one, a mismatch fails.
  if (!picked.entry.oauth!.issuer) callbackParams.delete("iss");
  let got: oauth.TokenEndpointResponse;
  try {
    const validated = oauth.validateAuthResponse(as, client, callbackParams, state);
    const secret = clientSecretOf(openSecret(deps.keyring, picked.entry.id, picked.v.version, picked.v));
    if (!secret) throw new AppError("upstream_error", "The brokered OAuth entry has no client secret");
    const res = await oauth.authorizationCodeGrantRequest(as, client, clientAuth(picked.entry, secret), validated, redirectUri(deps.origin), pkceVerifier(deps.kek, consumed.id, checked.nonce), {
      ...httpOptions(),
      additionalParameters: audienceParams(picked.entry),
    });
    got = await oauth.processAuthorizationCodeResponse(as, client, res, { requireIdToken: false });
  } catch (err) {
    await reopen();
    if (err instanceof AppError) throw err;
    throw new AppError("upstream_error", `The connection could not be completed: ${describeFailure(err).text}`);
  }
  const tokens: SealedTokens = { accessToken: got.access_token, refreshToken: got.refresh_token ?? null };
  const expiresAt = new Date(Date.now() + (got.expires_in ?? 300) * 1000);
  const connectionId = await ctx.db.transaction(async (tx) => {
    const [prev] = await tx
      .select()
      .from(upstreamConnections)
      .where(and(eq(upstreamConnections.tenantId, consumed.tenantId), eq(upstreamConnections.serverId, consumed.serverId), eq(upstreamConnections.userKey, consumed.userKey)))
      .for("update");
    const id = prev?.id ?? newId("connection");
    const generation = (prev?.generation ?? 0) + 1;
    const values = {
      userId: ctx.actor.userId,
      entryId: picked.entry.id,
      status: "active" as const,
      scope: got.scope ?? picked.entry.oauth!.scope ?? "",
      generation,
      ...seal(deps.kek, id, generation, tokens),
      accessExpiresAt: expiresAt,
      connectedAt: now,
      refreshedAt: null,
      updatedAt: now,
    };
    if (prev) await tx.update(upstreamConnections).set(values).where(eq(upstreamConnections.id, id));
    else await tx.insert(upstreamConnections).values({ id, tenantId: consumed.tenantId, serverId: consumed.serverId, userKey: consumed.userKey, ...values });
    await recordEvent(tx, ctx.actor, {
      action: "connection.connect",
      targetType: "upstream_connection",
      targetId: id,
      tenantId: consumed.tenantId,
      before: prev ? { status: prev.status } : null,
      after: { serverId: consumed.serverId, user: consumed.userKey, entryId: picked.entry.id, scope: values.scope, refreshToken: tokens.refreshToken !== null, request: consumed.id },
    });
    return id;
  });
  return { connectionId, serverId: consumed.serverId };
}

// ---------------------------------------------------------------- listing and ending

export const connectionListQuery = z.object({
  view: z.enum(["mine", "all"]).default("mine").describe("mine: the signed-in user's connections; all: every connection the caller may administer (vault.write), by tenant and server"),
  tenantId: z.string().max(100).optional(),
  serverId: z.string().max(100).optional(),
});

/** A connection as users and admins see it: never a token or ciphertext. */
export function publicConnection(c: UpstreamConnection, extra: { serverName?: string; tenantName?: string } = {}) {
  return {
    id: c.id,
    tenantId: c.tenantId,
    tenantName: extra.tenantName ?? null,
    serverId: c.serverId,
    serverName: extra.serverName ?? null,
    user: c.userKey,
    status: c.status,
    scope: c.scope,
    connectedAt: c.connectedAt?.toISOString() ?? null,
    refreshedAt: c.refreshedAt?.toISOString() ?? null,
    accessExpiresAt: c.status === "active" ? (c.accessExpiresAt?.toISOString() ?? null) : null,
    endedAt: c.endedAt?.toISOString() ?? null,
    endedBy: c.endedBy,
    endReason: c.endReason,
  };
}
export type PublicConnection = ReturnType<typeof publicConnection>;

/** The caller's own connections (view "mine"), or those of the tenants where it holds vault.write (view "all"). */
export async function listConnections(ctx: Ctx, raw: z.input<typeof connectionListQuery>) {
  const q = connectionListQuery.parse(raw);
  const rows = await ctx.db
    .select({ c: upstreamConnections, serverName: servers.name, tenantName: tenants.name })
    .from(upstreamConnections)
    .innerJoin(servers, eq(servers.id, upstreamConnections.serverId))
    .innerJoin(tenants, eq(tenants.id, upstreamConnections.tenantId))
    .where(
      and(
        q.tenantId ? eq(upstreamConnections.tenantId, q.tenantId) : undefined,
        q.serverId ? eq(upstreamConnections.serverId, q.serverId) : undefined,
        q.view === "mine" ? eq(upstreamConnections.userKey, (await identityOf(ctx.db, ctx.actor.userId)) ?? "\u0000none") : undefined,
      ),
    )
    .orderBy(desc(upstreamConnections.updatedAt))
    .limit(500);
  const visible = q.view === "mine" ? rows : rows.filter((r) => can(ctx.actor, "vault.write", r.c.tenantId) || (seesAllTenants(ctx.actor) && can(ctx.actor, "servers.read", r.c.tenantId)));
  return { items: visible.map((r) => publicConnection(r.c, { serverName: r.serverName, tenantName: r.tenantName })) };
}

/**
 * Ends a connection: its user disconnects it ("disconnected") or an admin
 * with vault.write in its tenant revokes it ("revoked"). The tokens are
 * erased, the end time is the cut agents apply (live section, republished in
 * the same transaction), the trail records who. The upstream AS is not told
 * (RFC 7009 revocation at the upstream is left to it; the token is gone here).
 */
export async function endConnectionAs(ctx: Ctx, id: string, deps: Pick<ConnectDeps, "kek">): Promise<PublicConnection> {
  if (!/^con_[0-9a-f]{32}$/.test(id)) throw notFound("Connection");
  const [row] = await ctx.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, id));
  if (!row) throw notFound("Connection");
  const own = ctx.actor.type === "user" && (await identityOf(ctx.db, ctx.actor.userId)) === row.userKey;
  const admin = can(ctx.actor, "vault.write", row.tenantId);
  if (!own && !admin) {
    if (can(ctx.actor, "servers.read", row.tenantId)) throw forbidden("You need the vault.write permission in this tenant to revoke another user's connection");
    throw notFound("Connection");
  }
  if (row.status !== "active") throw conflict(`This connection is already ${row.status}`);
  const ended = await endConnection(ctx.db, ctx.actor, row, own ? "disconnected" : "revoked", own ? "disconnected by the user" : `revoked by ${ctx.actor.label}`, deps.kek);
  return publicConnection(ended);
}

async function endConnection(db: Db, who: Actor | AgentActor, row: UpstreamConnection, status: ConnectionEnd, reason: string, kek: Kek): Promise<UpstreamConnection> {
  return db.transaction(async (tx) => {
    const at = new Date();
    const [ended] = await tx
      .update(upstreamConnections)
      .set({ status, ciphertext: null, wrappedKey: null, kekId: null, accessExpiresAt: null, endedAt: at, endedBy: who.label, endReason: reason, updatedAt: at })
      .where(and(eq(upstreamConnections.id, row.id), eq(upstreamConnections.status, "active")))
      .returning();
    if (!ended) throw conflict("This connection changed meanwhile; reload");
    await recordEvent(tx, who, {
      action: status === "broken" ? "connection.broken" : status === "revoked" ? "connection.revoke" : "connection.disconnect",
      targetType: "upstream_connection",
      targetId: row.id,
      tenantId: row.tenantId,
      before: { status: row.status },
      after: { status, serverId: row.serverId, user: row.userKey, reason },
    });
    await republishLiveBundles(tx, who.type === "agent" ? "system" : who, kek, [row.serverId], `connection ${row.id} ${status}`);
    return ended;
  });
}
