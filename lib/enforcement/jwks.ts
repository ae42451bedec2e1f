/**
 * Issuer key sets for access-token validation: the JWKS of each trusted
 * issuer, from its configured `jwksUri` or discovered from its metadata
 * (RFC 8414 `/.well-known/oauth-authorization-server`, then OpenID Connect
 * `/.well-known/openid-configuration`), cached per issuer and refreshed on an
 * unknown key at most once per `minRefreshIntervalMs`. Pure: jose + fetch.
 */
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWK, type JWSHeaderParameters, type FlattenedJWSInput } from "jose";
import { DEFAULT_AGENT_EGRESS } from "@/lib/net/agent";

export interface IssuerKeysConfig {
  issuer: string;
  jwksUri?: string;
  discovery: boolean;
}

export interface JwksCacheOptions {
  fetch?: typeof fetch;
  /** Fewest milliseconds between two fetches of one issuer's JWKS (default 30 000). */
  minRefreshIntervalMs?: number;
  /** Keys older than this are fetched again on next use (default 10 minutes). */
  maxAgeMs?: number;
  /** Per request (default 5 000). */
  timeoutMs?: number;
  now?: () => number;
}

/** The keys could not be loaded (network, HTTP status, malformed document). Its message names no secret. */
export class JwksUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JwksUnavailable";
  }
}

type KeyResolver = ReturnType<typeof createLocalJWKSet>;
type ResolvedKey = Awaited<ReturnType<KeyResolver>>;

interface Entry {
  jwksUri?: string;
  resolver?: KeyResolver;
  fetchedAt: number;
  /** The last failed load while no keys were held, and why: bounds retries against a failing issuer. */
  failedAt?: number;
  failure?: Error;
  inflight?: Promise<void>;
}

const MAX_BODY = 512 * 1024;

/** RFC 8414 §3.1 (path inserted after the well-known prefix), then OpenID Connect Discovery (path appended). */
export function discoveryUrls(issuer: string): string[] {
  const u = new URL(issuer);
  const path = u.pathname.replace(/\/+$/, "");
  const urls = [`${u.origin}/.well-known/oauth-authorization-server${path}`, `${u.origin}${path}/.well-known/openid-configuration`];
  if (path) urls.push(`${u.origin}/.well-known/openid-configuration${path}`);
  return [...new Set(urls)];
}

export class JwksCache {
  private readonly fetchImpl: typeof fetch;
  private readonly minRefreshIntervalMs: number;
  private readonly maxAgeMs: number;
  private readonly timeoutMs: number;
  private readonly failureBackoffMs: number;
  private readonly now: () => number;
  private readonly entries = new Map<string, Entry>();

  constructor(opts: JwksCacheOptions = {}) {
    // Through the egress guard: the agent passes its own (lib/net/agent.ts); the default allows public addresses and loopback.
    this.fetchImpl = opts.fetch ?? (DEFAULT_AGENT_EGRESS.fetch as typeof fetch);
    this.minRefreshIntervalMs = opts.minRefreshIntervalMs ?? 30_000;
    this.maxAgeMs = opts.maxAgeMs ?? 600_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.failureBackoffMs = Math.min(this.minRefreshIntervalMs, 5_000);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Finds the key for a JWS header among the issuer's keys (jose's local JWKS
   * matching: kid, kty, alg, use). On no match, fetches the JWKS again if the
   * last fetch is at least `minRefreshIntervalMs` old, and tries once more.
   */
  async getKey(cfg: IssuerKeysConfig, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<ResolvedKey> {
    const key = cacheKey(cfg);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { fetchedAt: Number.NEGATIVE_INFINITY };
      this.entries.set(key, entry);
    }
    if (!entry.resolver && entry.failure && entry.failedAt !== undefined && this.now() - entry.failedAt < this.failureBackoffMs) throw entry.failure;
    if (!entry.resolver || this.now() - entry.fetchedAt >= this.maxAgeMs) await this.load(cfg, entry, !entry.resolver);
    try {
      return await entry.resolver!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      if (this.now() - entry.fetchedAt < this.minRefreshIntervalMs) throw err;
      await this.load(cfg, entry, false);
      return entry.resolver!(header, token);
    }
  }

  /** Drops every cached key set (tests, or an issuer's configuration changed). */
  clear(): void {
    this.entries.clear();
  }

  private load(cfg: IssuerKeysConfig, entry: Entry, mustSucceed: boolean): Promise<void> {
    if (!entry.inflight) {
      entry.inflight = this.fetchKeys(cfg, entry)
        .then(
          (jwks) => {
            entry.resolver = createLocalJWKSet(jwks);
            entry.failure = undefined;
          },
          (err: unknown) => {
            entry.jwksUri = undefined; // discover again next time
            entry.failedAt = this.now();
            entry.failure = err instanceof JwksUnavailable ? err : new JwksUnavailable(`could not load the keys of ${cfg.issuer}`);
            throw entry.failure;
          },
        )
        .finally(() => {
          // Failures count too: a failing issuer is not asked again before the interval.
          entry.fetchedAt = this.now();
          entry.inflight = undefined;
        });
    }
    return entry.inflight.catch((err: unknown) => {
      // Stale keys beat none: keep serving the last good set if there is one.
      if (mustSucceed || !entry.resolver) throw err;
    });
  }

  private async fetchKeys(cfg: IssuerKeysConfig, entry: Entry): Promise<JSONWebKeySet> {
    const uri = cfg.jwksUri ?? entry.jwksUri ?? (await this.discover(cfg));
    entry.jwksUri = cfg.jwksUri ? undefined : uri;
    const body = await this.getJson(uri, "JWKS");
    const keys = (body as { keys?: unknown }).keys;
    if (!Array.isArray(keys)) throw new JwksUnavailable(`the JWKS at ${uri} has no keys array`);
    // Only public asymmetric keys: an issuer that publishes symmetric ("oct") keys must never have them used.
    const usable = keys.filter((k): k is JWK => !!k && typeof k === "object" && ["RSA", "EC", "OKP"].includes((k as JWK).kty ?? "") && !("d" in k));
    return { keys: usable };
  }

  private async discover(cfg: IssuerKeysConfig): Promise<string> {
    if (!cfg.discovery) throw new JwksUnavailable(`issuer ${cfg.issuer} has neither a JWKS URI nor discovery`);
    let lastError: unknown;
    for (const url of discoveryUrls(cfg.issuer)) {
      try {
        const meta = (await this.getJson(url, "metadata")) as { issuer?: unknown; jwks_uri?: unknown };
        // RFC 8414 §3.3 / OIDC Discovery §4.3: the metadata must name the issuer it was fetched for.
        if (meta.issuer !== cfg.issuer) throw new JwksUnavailable(`the metadata at ${url} is for another issuer`);
        if (typeof meta.jwks_uri !== "string" || !/^https?:\/\//.test(meta.jwks_uri)) throw new JwksUnavailable(`the metadata at ${url} has no jwks_uri`);
        // Keys fetched over plain http could be swapped by anyone on the path: https only, except to a loopback host.
        if (!secureOrLoopback(meta.jwks_uri)) throw new JwksUnavailable(`the metadata at ${url} names a plain-http jwks_uri; only https (or http to a loopback host) is used`);
        return meta.jwks_uri;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError instanceof JwksUnavailable ? lastError : new JwksUnavailable(`could not discover the JWKS of ${cfg.issuer}`);
  }

  private async getJson(url: string, what: string): Promise<unknown> {
    if (!secureOrLoopback(url)) throw new JwksUnavailable(`${what} at ${url} is plain http; only https (or http to a loopback host) is fetched`);
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers: { accept: "application/json" }, redirect: "error", signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
      throw new JwksUnavailable(`${what} fetch from ${url} ${timedOut ? "timed out" : "failed"}`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new JwksUnavailable(`${what} fetch from ${url} answered ${res.status}`);
    }
    const text = await readCapped(res, MAX_BODY).catch((err: unknown) => {
      throw err instanceof JwksUnavailable ? new JwksUnavailable(`${what} from ${url} is larger than ${MAX_BODY} bytes`) : new JwksUnavailable(`${what} from ${url} could not be read`);
    });
    try {
      const body: unknown = JSON.parse(text);
      if (!body || typeof body !== "object" || Array.isArray(body)) throw new Error("not an object");
      return body;
    } catch {
      throw new JwksUnavailable(`${what} from ${url} is not a JSON object`);
    }
  }
}

function cacheKey(cfg: IssuerKeysConfig): string {
  return `${cfg.issuer}\n${cfg.jwksUri ?? ""}\n${cfg.discovery ? 1 : 0}`;
}

/** https, or http to a loopback host (local issuers in development and tests). */
export function secureOrLoopback(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol === "https:") return true;
  if (u.protocol !== "http:") return false;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Reads a body chunk by chunk and stops (cancelling the rest) once it passes `max` bytes, so an endless answer costs at most `max`. */
async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new JwksUnavailable("too large");
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      throw new JwksUnavailable("too large");
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
