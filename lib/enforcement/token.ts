/**
 * Access-token validation for a protected MCP server (MCP authorization,
 * RFC 9068 JWT access tokens, RFC 8707 audience binding): the token must be a
 * JWS by one of the server's trusted issuers, with an allowed asymmetric
 * algorithm, for exactly this server's canonical resource URI, and within its
 * lifetime. Pure: jose + fetch, no database, no Next.js.
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import type { BundleServer } from "./bundle";
import { JwksCache, JwksUnavailable } from "./jwks";

export type TokenIssuerConfig = BundleServer["issuers"][number];

export interface Principal {
  issuer: string;
  tenantId: string;
  user: string;
  client: string;
  scopes: string[];
  groups: string[];
  /** The delegation chain (`act`), outermost actor first. */
  actors: string[];
  iat: number;
  exp: number;
}

export type TokenResult =
  | { ok: true; claims: Record<string, unknown>; principal: Principal }
  | { ok: false; error: "invalid_token"; description: string };

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

const fail = (description: string): TokenResult => ({ ok: false, error: "invalid_token", description });

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

    // Unverified reads, only to pick the issuer configuration and reject early.
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
      iss = decodeJwt(token).iss;
    } catch {
      return fail("the access token is malformed");
    }
    if (typeof iss !== "string" || !iss) return fail("the access token names no issuer");
    const cfg = server.issuers.find((i) => i.issuer === iss);
    if (!cfg) return fail("the access token's issuer is not trusted by this server");
    const algorithms = cfg.algorithms.filter((a) => ASYMMETRIC.has(a));
    if (typeof alg !== "string" || !algorithms.includes(alg)) return fail(`the signing algorithm ${typeof alg === "string" ? JSON.stringify(alg.slice(0, 20)) : "(none)"} is not allowed`);

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header, jws) => this.jwks.getKey(cfg, header, jws), {
        algorithms,
        issuer: cfg.issuer,
        audience: server.resourceUri,
        requiredClaims: ["exp"],
        clockTolerance: this.skew,
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      return fail(describe(err));
    }

    const nowSec = Math.floor(this.now() / 1000);
    if (payload.iat !== undefined && payload.iat > nowSec + this.skew) return fail("the access token was issued in the future");

    const tenantId = stringClaim(payload[cfg.claims.tenant]);
    if (!tenantId) return fail(`the access token has no "${cfg.claims.tenant}" (tenant) claim`);
    const user = stringClaim(payload[cfg.claims.user]);
    if (!user) return fail(`the access token has no "${cfg.claims.user}" (user) claim`);
    const client = stringClaim(payload[cfg.claims.client]) ?? stringClaim(payload.client_id) ?? stringClaim(payload.azp) ?? "";

    return {
      ok: true,
      claims: payload as Record<string, unknown>,
      principal: {
        issuer: cfg.issuer,
        tenantId,
        user,
        client,
        scopes: scopeList(payload[cfg.claims.scopes]),
        groups: stringArray(payload.groups),
        actors: actorChain(payload.act),
        iat: typeof payload.iat === "number" ? payload.iat : 0,
        exp: payload.exp!,
      },
    };
  }
}

function stringClaim(v: unknown): string | undefined {
  if (typeof v === "string" && v) return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string") ? [...v] : [];
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
