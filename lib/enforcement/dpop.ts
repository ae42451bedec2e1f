/**
 * Sender-constrained access tokens (DPoP, RFC 9449) at a protected MCP
 * server. A token whose `cnf.jkt` names a key thumbprint (RFC 7638) is usable
 * only with a fresh proof JWT signed by that key, for this request's method
 * and URL, carrying a hash of the token (`ath`) and a `jti` never seen before
 * by this process. Per server: "off" (no DPoP scheme; bound tokens refused),
 * "allowed" (bound tokens need their proof, plain bearer tokens still pass),
 * "required" (only bound tokens with a valid proof). Pure: jose + node:crypto.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { calculateJwkThumbprint, decodeProtectedHeader, errors as joseErrors, importJWK, jwtVerify, type JWK } from "jose";
import type { BundleServer } from "./bundle";
import { protectedResourceMetadataUrl } from "./resource-uri";

export const DPOP_MODES = ["off", "allowed", "required"] as const;
export type DpopMode = (typeof DPOP_MODES)[number];

/** Asymmetric proof algorithms only: never `none`, never HMAC. */
export const DPOP_ALGS = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"] as const;
/** Longest DPoP header accepted (RFC 9449 leaves it open; a P-256 proof is ~0.6 KiB, an RSA-4096 one ~2 KiB). */
export const MAX_DPOP_PROOF_BYTES = 8 * 1024;
/** How far a proof's `iat` may be from the agent's clock, in seconds (default). */
export const DPOP_IAT_WINDOW_SECONDS = 60;
/** Most proof `jti`s remembered at once per agent process (default). */
export const DPOP_MAX_REPLAY_ENTRIES = 100_000;
const MAX_JTI_CHARS = 256;
const MAX_HTU_CHARS = 2048;
const MAX_TOKEN_CHARS = 16 * 1024;
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const KTY_OF: Record<string, string> = { ES256: "EC", ES384: "EC", EdDSA: "OKP", Ed25519: "OKP", RS256: "RSA", PS256: "RSA" };
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export type AuthError = { code: "invalid_request" | "invalid_token" | "invalid_dpop_proof" | "use_dpop_nonce"; description: string };

/** What the Authorization and DPoP headers carry. */
export type Credentials = { scheme: "Bearer" | "DPoP"; token: string; proof: string | null };

/** A bundle server's mode ("off" when absent: bundles from before DPoP). */
export function dpopMode(server: Pick<BundleServer, "dpop">): DpopMode {
  return server.dpop === "allowed" || server.dpop === "required" ? server.dpop : "off";
}

/**
 * Reads `Authorization: Bearer|DPoP <token>` and the DPoP header from the raw
 * headers (Node joins repeated unknown headers with ", ", so they are counted
 * here): at most one DPoP header, at most MAX_DPOP_PROOF_BYTES.
 */
export function readCredentials(authorization: string, rawHeaders: string[]): { ok: true; credentials: Credentials } | { ok: false; error: AuthError } {
  const m = /^(Bearer|DPoP) +(\S+)$/i.exec(authorization);
  if (!m || !TOKEN68.test(m[2]!) || m[2]!.length > MAX_TOKEN_CHARS) return { ok: false, error: { code: "invalid_token", description: "the Authorization header is not a bearer or DPoP token" } };
  const proofs: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === "dpop") proofs.push(rawHeaders[i + 1] ?? "");
  if (proofs.length > 1) return { ok: false, error: { code: "invalid_dpop_proof", description: "exactly one DPoP header is accepted" } };
  const proof = proofs[0] ?? null;
  if (proof !== null && Buffer.byteLength(proof) > MAX_DPOP_PROOF_BYTES)
    return { ok: false, error: { code: "invalid_dpop_proof", description: `the DPoP proof is longer than ${MAX_DPOP_PROOF_BYTES} bytes` } };
  return { ok: true, credentials: { scheme: m[1]!.toLowerCase() === "dpop" ? "DPoP" : "Bearer", token: m[2]!, proof } };
}

/** RFC 9449 §4.3 (12): base64url(SHA-256(access token)). */
export function accessTokenHash(token: string): string {
  return createHash("sha256").update(token, "ascii").digest("base64url");
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The URL without query and fragment, normalized (scheme and host case, default port, dot segments). */
function htuOf(u: string): string | null {
  try {
    const url = new URL(u);
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    url.search = "";
    url.hash = "";
    return url.href;
  } catch {
    return null;
  }
}

/** Length of one nonce window (default): a nonce is accepted in its window and the next, so for 60 to 120 s. */
export const DPOP_NONCE_WINDOW_SECONDS = 60;
const MAX_NONCE_CHARS = 64;
const NONCE = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{22})$/;

/**
 * Resource-server-provided DPoP nonces (RFC 9449 §9), stateless: a nonce is
 * `<window>.<HMAC-SHA-256(key, resource URI, window)>` (128 bits, base64url),
 * where the window is the current time divided by the window length. Nothing
 * is stored; a nonce rotates every window and is accepted during its window
 * and the next. Replicas that share the key (`--dpop-nonce-key`) accept each
 * other's nonces; with a key of its own (the default: random per process) a
 * replica accepts only its own, so a proof captured at one replica cannot be
 * replayed at another, whose own jti cache would not know it.
 */
export class DpopNonces {
  readonly windowMs: number;
  private readonly key: Buffer;
  private readonly now: () => number;

  constructor(opts: { key?: Buffer | null; windowSeconds?: number; now?: () => number } = {}) {
    this.key = opts.key ?? randomBytes(32);
    this.windowMs = (opts.windowSeconds ?? DPOP_NONCE_WINDOW_SECONDS) * 1000;
    this.now = opts.now ?? Date.now;
  }

  private mac(resourceUri: string, window: number): string {
    return createHmac("sha256", this.key).update(`dpop-nonce\u0000${resourceUri}\u0000${window}`).digest("base64url").slice(0, 22);
  }

  /** The nonce of the current window for this resource. */
  issue(resourceUri: string): string {
    const w = Math.floor(this.now() / this.windowMs);
    return `${w.toString(36)}.${this.mac(resourceUri, w)}`;
  }

  /** "fresh" (this window), "stale" (the previous one: accepted, a new nonce is sent along) or "bad". */
  check(nonce: unknown, resourceUri: string): "fresh" | "stale" | "bad" {
    if (typeof nonce !== "string" || nonce.length > MAX_NONCE_CHARS) return "bad";
    const m = NONCE.exec(nonce);
    if (!m) return "bad";
    const w = parseInt(m[1]!, 36);
    const current = Math.floor(this.now() / this.windowMs);
    if (w !== current && w !== current - 1) return "bad";
    if (!sameString(m[2]!, this.mac(resourceUri, w))) return "bad";
    return w === current ? "fresh" : "stale";
  }
}

export interface DpopVerifierOptions {
  /** Largest |now − iat| accepted, in seconds (default DPOP_IAT_WINDOW_SECONDS). */
  iatWindowSeconds?: number;
  /** Most `jti`s remembered (default DPOP_MAX_REPLAY_ENTRIES); when full of live entries, new proofs are refused (fail closed). */
  maxReplayEntries?: number;
  now?: () => number;
}

export interface ProofInput {
  proof: string;
  method: string;
  /** The request's URL as the client addressed it (the canonical resource URI). */
  url: string;
  accessToken: string;
  /** The token's `cnf.jkt`. */
  jkt: string;
  /** When set, the proof must carry a nonce these issued for `url` (RFC 9449 §9). */
  nonces?: DpopNonces;
}

/** `staleNonce`: the proof's nonce is from the previous window; the answer carries a fresh one. */
export type ProofResult = { ok: true; staleNonce?: boolean } | { ok: false; error: AuthError };

const bad = (description: string): ProofResult => ({ ok: false, error: { code: "invalid_dpop_proof", description } });

/**
 * Verifies DPoP proofs and remembers their `jti`s (per process: replicas do
 * not share the cache, see docs/identity.md). A `jti` is remembered only
 * once its proof fully verified, until its `iat` leaves the window.
 */
export class DpopVerifier {
  readonly windowSeconds: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** SHA-256(jkt, jti) → ms after which a proof with that jti is stale anyway. */
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(opts: DpopVerifierOptions = {}) {
    this.windowSeconds = opts.iatWindowSeconds ?? DPOP_IAT_WINDOW_SECONDS;
    this.maxEntries = opts.maxReplayEntries ?? DPOP_MAX_REPLAY_ENTRIES;
    this.now = opts.now ?? Date.now;
  }

  get replayEntries(): number {
    return this.seen.size;
  }

  async verify(input: ProofInput): Promise<ProofResult> {
    const { proof } = input;
    if (typeof proof !== "string" || Buffer.byteLength(proof) > MAX_DPOP_PROOF_BYTES) return bad("the DPoP proof is missing or too long");
    if (!COMPACT.test(proof)) return bad("the DPoP proof is not a compact JWS");
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(proof);
    } catch {
      return bad("the DPoP proof is malformed");
    }
    const typ = typeof header.typ === "string" ? header.typ.toLowerCase() : "";
    if (typ !== "dpop+jwt" && typ !== "application/dpop+jwt") return bad('the DPoP proof is not of type "dpop+jwt"');
    const alg = header.alg;
    if (typeof alg !== "string" || !(DPOP_ALGS as readonly string[]).includes(alg)) return bad(`the DPoP proof's algorithm is not one of ${DPOP_ALGS.join(", ")}`);
    const jwk = header.jwk as JWK | undefined;
    if (!jwk || typeof jwk !== "object" || Array.isArray(jwk)) return bad("the DPoP proof carries no public key (jwk)");
    if (PRIVATE_MEMBERS.some((k) => k in jwk)) return bad("the DPoP proof's jwk is not a public key");
    if (jwk.kty !== KTY_OF[alg]) return bad("the DPoP proof's jwk does not fit its algorithm");

    let payload: Record<string, unknown>;
    try {
      const key = await importJWK(jwk, alg);
      ({ payload } = await jwtVerify(proof, key, { algorithms: [alg], clockTolerance: this.windowSeconds, currentDate: new Date(this.now()) }));
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) return bad("the DPoP proof's signature does not verify");
      return bad("the DPoP proof could not be verified");
    }

    const { jti, htm, htu, iat, ath } = payload;
    if (typeof jti !== "string" || !jti || jti.length > MAX_JTI_CHARS) return bad("the DPoP proof has no valid jti");
    if (htm !== input.method) return bad("the DPoP proof is for another HTTP method (htm)");
    const expected = htuOf(input.url);
    if (typeof htu !== "string" || htu.length > MAX_HTU_CHARS || expected === null || htuOf(htu) !== expected) return bad("the DPoP proof is for another URL (htu)");
    const nowMs = this.now();
    if (typeof iat !== "number" || !Number.isFinite(iat) || Math.abs(nowMs / 1000 - iat) > this.windowSeconds) return bad("the DPoP proof's iat is outside the accepted window");
    if (typeof ath !== "string" || !sameString(ath, accessTokenHash(input.accessToken))) return bad("the DPoP proof is not for this access token (ath)");
    let thumbprint: string;
    try {
      thumbprint = await calculateJwkThumbprint(jwk, "sha256");
    } catch {
      return bad("the DPoP proof's jwk is malformed");
    }
    if (!sameString(thumbprint, input.jkt)) return bad("the DPoP proof is signed by another key than the access token is bound to (cnf.jkt)");
    // A nonce is asked for only of an otherwise valid proof; its jti is not remembered (the retry is a new proof).
    let staleNonce = false;
    if (input.nonces) {
      const n = input.nonces.check(payload.nonce, input.url);
      if (n === "bad")
        return {
          ok: false,
          error: {
            code: "use_dpop_nonce",
            description:
              payload.nonce === undefined ? "a DPoP nonce is required: retry with the DPoP-Nonce of this answer" : "the DPoP nonce is invalid or expired: retry with the DPoP-Nonce of this answer",
          },
        };
      staleNonce = n === "stale";
    }

    // Replay: last, so only a fully valid proof takes a place in the cache.
    const key = createHash("sha256").update(`${input.jkt}\u0000${jti}`).digest("base64url");
    this.expire(nowMs);
    const until = this.seen.get(key);
    if (until !== undefined && until > nowMs) return bad("the DPoP proof was already used (jti)");
    if (this.seen.size >= this.maxEntries) {
      this.sweep(nowMs);
      if (this.seen.size >= this.maxEntries) return bad("the DPoP replay cache is full; retry shortly");
    }
    this.seen.delete(key);
    this.seen.set(key, (iat + this.windowSeconds) * 1000);
    return staleNonce ? { ok: true, staleNonce } : { ok: true };
  }

  /** Drops expired entries from the oldest end (insertion order is nearly expiry order). */
  private expire(nowMs: number): void {
    for (const [k, until] of this.seen) {
      if (until > nowMs) break;
      this.seen.delete(k);
    }
  }

  /** A full pass, at most once a second (bounds the work a full cache costs). */
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweep < 1000) return;
    this.lastSweep = nowMs;
    for (const [k, until] of this.seen) if (until <= nowMs) this.seen.delete(k);
  }
}

/** The token's `cnf.jkt`, when the token is DPoP-bound. */
export function boundJkt(claims: Record<string, unknown>): string | undefined {
  const cnf = claims.cnf;
  if (!cnf || typeof cnf !== "object" || Array.isArray(cnf)) return undefined;
  const jkt = (cnf as { jkt?: unknown }).jkt;
  // Present but not a string: still bound (to nothing a proof can match).
  if (jkt === undefined) return undefined;
  return typeof jkt === "string" && jkt.length <= 128 ? jkt : "\u0000invalid";
}

/**
 * The sender check after the token verified (run on every request, cached
 * token or not): the scheme the server's mode accepts, the binding, the proof.
 */
export async function checkSender(
  verifier: DpopVerifier,
  server: Pick<BundleServer, "dpop" | "dpopNonce" | "resourceUri">,
  credentials: Credentials,
  jkt: string | undefined,
  method: string,
  nonces?: DpopNonces,
): Promise<ProofResult> {
  const mode = dpopMode(server);
  if (credentials.scheme === "Bearer") {
    // RFC 9449 §7.2: a bound token presented as a bearer token is refused, whatever the mode.
    if (jkt !== undefined) return { ok: false, error: { code: "invalid_token", description: "the access token is DPoP-bound (cnf.jkt); send it as Authorization: DPoP with a DPoP proof" } };
    if (mode === "required") return { ok: false, error: { code: "invalid_token", description: "this server accepts only DPoP-bound access tokens" } };
    return { ok: true };
  }
  if (mode === "off") return { ok: false, error: { code: "invalid_token", description: "this server does not accept DPoP tokens" } };
  if (jkt === undefined) return { ok: false, error: { code: "invalid_token", description: "the access token is not DPoP-bound (no cnf.jkt)" } };
  if (credentials.proof === null) return bad("a DPoP proof (DPoP header) is required");
  // The server's dpopNonce setting (RFC 9449 §9): the proof must carry a nonce the agent issued.
  return verifier.verify({ proof: credentials.proof, method, url: server.resourceUri, accessToken: credentials.token, jkt, nonces: server.dpopNonce === true ? nonces : undefined });
}

const q = (v: string) => `"${v.replace(/[\r\n]+/g, " ").replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/**
 * The WWW-Authenticate value(s) of a 401. "off": the Bearer challenge alone.
 * "allowed": the Bearer challenge and `DPoP algs=…`, the error in the one of
 * the scheme the client used. "required": one DPoP challenge carrying
 * resource_metadata and scope as the Bearer one would.
 */
export function challenges(
  server: Pick<BundleServer, "dpop" | "resourceUri" | "scopes">,
  bearer: (error?: { code: string; description: string }) => string,
  error?: { code: string; description: string },
  usedDpop = false,
): string | string[] {
  const mode = dpopMode(server);
  if (mode === "off") return bearer(error);
  const dpop = (err?: { code: string; description: string }, discovery = false) => {
    const parts: string[] = [];
    if (discovery) {
      parts.push(`resource_metadata=${q(protectedResourceMetadataUrl(server.resourceUri))}`);
      if (server.scopes.length) parts.push(`scope=${q(server.scopes.join(" "))}`);
    }
    parts.push(`algs=${q(DPOP_ALGS.join(" "))}`);
    if (err) parts.push(`error=${q(err.code)}`, `error_description=${q(err.description)}`);
    return `DPoP ${parts.join(", ")}`;
  };
  if (mode === "required") return dpop(error, true);
  return usedDpop || error?.code === "invalid_dpop_proof" ? [bearer(), dpop(error)] : [bearer(error), dpop()];
}

/** The 403 step-up challenge for a request made with the DPoP scheme: the same parameters under `DPoP`, with algs. */
export function stepUpChallenge(bearerChallenge: string, usedDpop: boolean): string {
  return usedDpop ? `DPoP ${bearerChallenge.replace(/^Bearer /, "")}, algs=${q(DPOP_ALGS.join(" "))}` : bearerChallenge;
}
