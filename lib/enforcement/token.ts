/**
 * Access-token validation for a protected MCP server (MCP authorization,
 * RFC 9068 JWT access tokens, RFC 8707 audience binding): the token must be a
 * JWS by an issuer that one of the server's tenants trusts, verified with that
 * tenant's own key source, with an allowed asymmetric algorithm, for exactly
 * this server's canonical resource URI, within its lifetime, and mapped to
 * exactly one tenant by that tenant's own mapping rule. Trust is granted by a
 * tenant, never by the server: nothing the server's owner configures lets a
 * token act for another tenant. Pure: jose + fetch, no database, no Next.js.
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import type { BundleServer, BundleTrust } from "./bundle";
import { claimAt, mapsToTenant, MAX_CLAIM_VALUES, stringClaim } from "./claims";
import { boundJkt } from "./dpop";
import { JwksCache, JwksUnavailable } from "./jwks";

export type TokenIssuerConfig = BundleTrust;

export interface Principal {
  issuer: string;
  tenantId: string;
  /** The user, namespaced by its issuer (`qualifiedUser`): two issuers' equal `sub`s are two users. */
  user: string;
  /** The issuer's own subject (the mapped user claim), for display and upstream reporting. */
  subject?: string;
  client: string;
  scopes: string[];
  groups: string[];
  /** The delegation chain (`act`), outermost actor first. */
  actors: string[];
  iat: number;
  exp: number;
  /** The RFC 7009 endpoint of the trust entry that admitted the token (its tenant's own), if any. */
  revocationEndpoint?: string;
  /** RFC 9449 `cnf.jkt`: the token is DPoP-bound to this key thumbprint (checked per request, lib/enforcement/dpop.ts). */
  jkt?: string;
}

export type TokenResult = { ok: true; claims: Record<string, unknown>; principal: Principal } | { ok: false; error: "invalid_token"; description: string };

export interface TokenValidatorOptions {
  fetch?: typeof fetch;
  /** Tolerance for exp, nbf and iat, in seconds (default 60). */
  clockSkewSeconds?: number;
  /** Fewest milliseconds between two JWKS fetches of one issuer (default 30 000). */
  minRefreshIntervalMs?: number;
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
}

/** Asymmetric JWS algorithms only: never `none`, never HMAC (whose "key" could be a public key). */
const ASYMMETRIC = new Set(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]);
const MAX_TOKEN_LENGTH = 16 * 1024;
const MAX_ACT_DEPTH = 16;
/** Distinct key sources tried for one token: beyond this the token is refused as ambiguous (bounds fetches per request). */
const MAX_KEY_SOURCES = 4;

const fail = (description: string): TokenResult => ({ ok: false, error: "invalid_token", description });

/**
 * The principal's user id: `<issuer>#<subject>`. An issuer identifier has no
 * fragment (RFC 8414 §2), so the first `#` splits it unambiguously; the
 * grants, revocations, decision log and Cedar `User` entities all use it.
 */
export function qualifiedUser(issuer: string, subject: string): string {
  return `${issuer}#${subject}`;
}

/** Whether the token maps to the entry's tenant under the entry's own rule. */
export function entryMaps(entry: Pick<BundleTrust, "tenantMapping">, payload: Record<string, unknown>): boolean {
  return mapsToTenant(entry.tenantMapping, payload);
}

/** RFC 9068 §2.1: `typ` is "at+jwt"; "application/at+jwt" is the same media type (RFC 7515 §4.1.9), compared case-insensitively. */
function isAtJwt(typ: unknown): boolean {
  if (typeof typ !== "string") return false;
  const t = typ.toLowerCase();
  return t === "at+jwt" || t === "application/at+jwt";
}

function keySourceOf(e: BundleTrust): string {
  return `${e.jwksUri ?? ""}\n${e.discovery ? 1 : 0}`;
}

export class TokenValidator {
  private readonly skew: number;
  private readonly now: () => number;
  private readonly jwks: JwksCache;

  constructor(opts: TokenValidatorOptions = {}) {
    this.skew = opts.clockSkewSeconds ?? 60;
    this.now = opts.now ?? Date.now;
    this.jwks = new JwksCache({ fetch: opts.fetch, minRefreshIntervalMs: opts.minRefreshIntervalMs, now: this.now });
  }

  async validate(token: string, server: BundleServer): Promise<TokenResult> {
    if (typeof token !== "string" || !token) return fail("no access token");
    if (token.length > MAX_TOKEN_LENGTH) return fail("the access token is too long");
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) return fail("the access token is not a compact JWS");

    // Unverified reads, only to pick the candidate trust entries and reject early.
    let alg: unknown;
    let typ: unknown;
    let unverified: JWTPayload;
    try {
      ({ alg, typ } = decodeProtectedHeader(token));
      unverified = decodeJwt(token);
    } catch {
      return fail("the access token is malformed");
    }
    const iss = unverified.iss;
    if (typeof iss !== "string" || !iss) return fail("the access token names no issuer");
    const tenants = new Set(server.tenantIds);
    const ofIssuer = (Array.isArray(server.trust) ? server.trust : []).filter((e) => e.issuer === iss && tenants.has(e.tenantId));
    if (ofIssuer.length === 0) return fail("the access token's issuer is not trusted by any tenant of this server");
    // Only the entries whose own tenant rule maps this token can admit it: a
    // tenant's key source is never consulted for a token that is not its own.
    const mapped = ofIssuer.filter((e) => entryMaps(e, unverified as Record<string, unknown>));
    if (mapped.length === 0) return fail("the access token does not map to a tenant that trusts its issuer");
    const algOk = mapped.filter((e) => typeof alg === "string" && ASYMMETRIC.has(alg) && e.algorithms.includes(alg));
    if (algOk.length === 0) return fail(`the signing algorithm ${typeof alg === "string" ? JSON.stringify(alg.slice(0, 20)) : "(none)"} is not allowed`);
    const candidates = algOk.filter((e) => e.requireTyp !== "at+jwt" || isAtJwt(typ));
    if (candidates.length === 0) return fail('the access token is not of type "at+jwt" (RFC 9068)');

    const bySource = new Map<string, BundleTrust[]>();
    for (const e of candidates) bySource.set(keySourceOf(e), [...(bySource.get(keySourceOf(e)) ?? []), e]);
    if (bySource.size > MAX_KEY_SOURCES) return fail("the access token maps to too many tenants' trust entries (ambiguous)");

    let payload: JWTPayload | undefined;
    let lastError: unknown;
    let unavailable: JwksUnavailable | undefined;
    const admitted: BundleTrust[] = [];
    for (const entries of bySource.values()) {
      const keys = entries[0]!;
      try {
        const r = await jwtVerify(token, (header, jws) => this.jwks.getKey(keys, header, jws), {
          algorithms: [alg as string],
          issuer: iss,
          audience: server.resourceUri,
          requiredClaims: ["exp"],
          clockTolerance: this.skew,
          currentDate: new Date(this.now()),
        });
        payload = r.payload;
        admitted.push(...entries);
      } catch (err) {
        lastError = err;
        if (err instanceof JwksUnavailable) unavailable = err;
      }
    }
    if (!payload) return fail(describe(lastError));
    const admittedTenants = new Set(admitted.map((e) => e.tenantId));
    if (admittedTenants.size !== 1) return fail("the access token maps to more than one tenant (ambiguous)");
    // Another tenant's keys could not be loaded: it cannot be ruled out that the token is also its (fail closed).
    if (unavailable) return fail(describe(unavailable));
    const cfg = admitted[0]!;

    const nowSec = Math.floor(this.now() / 1000);
    if (payload.iat !== undefined && payload.iat > nowSec + this.skew) return fail("the access token was issued in the future");

    const claims = payload as Record<string, unknown>;
    const subject = stringClaim(claimAt(claims, cfg.claims.user));
    if (!subject) return fail(`the access token has no "${cfg.claims.user.slice(0, 64)}" (user) claim`);
    const jkt = boundJkt(claims);
    const client = stringClaim(claimAt(claims, cfg.claims.client)) ?? stringClaim(payload.client_id) ?? stringClaim(payload.azp) ?? "";

    return {
      ok: true,
      claims,
      principal: {
        issuer: iss,
        tenantId: cfg.tenantId,
        user: qualifiedUser(iss, subject),
        subject,
        client,
        scopes: scopeList(claimAt(claims, cfg.claims.scopes)),
        groups: stringArray(claimAt(claims, cfg.claims.groups || "groups")),
        actors: actorChain(payload.act),
        iat: typeof payload.iat === "number" ? payload.iat : 0,
        exp: payload.exp!,
        ...(cfg.revocationEndpoint ? { revocationEndpoint: cfg.revocationEndpoint } : {}),
        ...(jkt !== undefined ? { jkt } : {}),
      },
    };
  }
}

function stringArray(v: unknown): string[] {
  if (typeof v === "string" && v) return [v];
  return Array.isArray(v) ? v.slice(0, MAX_CLAIM_VALUES).filter((x): x is string => typeof x === "string" && x.length > 0) : [];
}

/** RFC 8693 `scope` (space-separated) or an array (`scp` style). */
function scopeList(v: unknown): string[] {
  if (typeof v === "string") return [...new Set(v.split(/\s+/).filter(Boolean))];
  if (Array.isArray(v)) return [...new Set(v.filter((x): x is string => typeof x === "string" && x.length > 0))];
  return [];
}

/** RFC 8693 §4.1: `act` is the current actor, `act.act` the one before it, and so on. */
function actorChain(act: unknown): string[] {
  const actors: string[] = [];
  let cur = act;
  while (cur && typeof cur === "object" && !Array.isArray(cur) && actors.length < MAX_ACT_DEPTH) {
    const sub = (cur as { sub?: unknown }).sub;
    if (typeof sub === "string" && sub) actors.push(sub);
    cur = (cur as { act?: unknown }).act;
  }
  return actors;
}

/** A fixed description per failure: never the token, never key material. */
function describe(err: unknown): string {
  if (err instanceof JwksUnavailable) return `the issuer's signing keys are unavailable: ${err.message}`;
  if (err instanceof joseErrors.JWTExpired) return "the access token has expired";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "aud":
        return "the access token is not for this resource (aud)";
      case "iss":
        return "the access token's issuer does not match";
      case "nbf":
        return "the access token is not valid yet (nbf)";
      case "iat":
        return "the access token was issued in the future";
      case "exp":
        return "the access token has no valid expiry (exp)";
      default:
        return `the access token's "${String(err.claim).slice(0, 40)}" claim is invalid`;
    }
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "the access token's signature does not verify";
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "no signing key of the issuer matches the access token (kid)";
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return "the access token's signing key is ambiguous";
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return "the signing algorithm is not allowed";
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return "the access token is malformed";
  return "the access token could not be verified";
}
