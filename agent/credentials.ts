import { redactUrlsIn } from "@/lib/enforcement/redact";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import type { BundleContent, BundleCredential } from "@/lib/enforcement/bundle";
import { clientCredentialsRequest, clientSecretOf, placeCredential, readTokenAnswer, staticCredentialValue, tokenExchangeRequest } from "@/lib/enforcement/upstream-credential";
import type { Principal } from "@/lib/enforcement/token";
import { isRevoked } from "@/lib/enforcement/live-index";
import type { Metrics } from "./metrics";
import { BrokeredTokens } from "./connections";

/** What the broker (`POST /api/v1/agent/credentials`) answers. */
export interface BrokeredCredential {
  entryId: string;
  kind: BundleCredential["kind"];
  placement: BundleCredential["placement"];
  version: number;
  secret: string | { username: string; password: string } | { clientSecret: string };
  oauth?: { tokenUrl: string; clientId: string; scope?: string; audience?: string; authMethod: "client_secret_basic" | "client_secret_post" };
  ttlSeconds: number;
  graceUntil?: string | null;
}

/** Where the credential goes on the upstream request: one header or one query parameter. Holds a secret: never log it. */
export interface Injection {
  entryId: string;
  version: number;
  in: "header" | "query";
  name: string;
  value: string;
}

/** The bundle says a credential exists but it could not be resolved: the call must not be forwarded. */
export class CredentialUnavailable extends Error {
  constructor(
    readonly entryId: string,
    reason: string,
  ) {
    super(`credential ${entryId} unavailable: ${reason}`);
    this.name = "CredentialUnavailable";
  }
}

export interface CredentialBrokerOptions {
  controlPlaneUrl: string;
  agentKey: () => string | null;
  metrics: Metrics;
  log?: (msg: string) => void;
  /** Token endpoints (the upstream's AS), through the egress guard (lib/net/agent.ts; main passes the agent's own). */
  fetch?: FetchLike;
  /** The broker (the control plane), through the egress guard. */
  controlPlaneFetch?: FetchLike;
  /** Per-request timeout (broker and token endpoint). Default 10 s. */
  timeoutMs?: number;
  now?: () => number;
}

interface Cached {
  injection: Injection;
  /** Milliseconds since the epoch after which the value is fetched again. */
  expiresAt: number;
}

/** The caller of a call, for per-user token exchange: its validated access token and principal. Holds a token: never log it. */
export interface CallSubject {
  token: string;
  principal: Principal;
}

interface UserToken {
  injection: Injection;
  expiresAt: number;
  entryId: string;
  principal: Principal;
}

/** Exchanged per-user tokens held at most (oldest dropped first). */
const MAX_USER_TOKENS = 10_000;
/** A token endpoint's answer is read up to this many bytes; a longer one is an error. */
const MAX_TOKEN_ANSWER_BYTES = 64 * 1024;
/** An exchanged token whose answer gives no lifetime is kept this long. */
const DEFAULT_EXCHANGED_TTL_MS = 60_000;
/** An exchanged token is used until this long before it expires. */
const EXCHANGED_MARGIN_MS = 30_000;

/** After a failed resolution, calls fail at once for this long instead of asking again. */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** An OAuth access token is used until this long before it expires. */
const TOKEN_MARGIN_MS = 60_000;

/**
 * The bundle entry that applies to a (server, tenant): the tenant's own entry
 * wins over the shared one (tenantId null); none → the upstream is open.
 */
export function credentialFor(content: BundleContent, serverId: string, tenantId: string): BundleCredential | null {
  const all = (content.credentials ?? []).filter((c) => c.serverId === serverId);
  return all.find((c) => c.tenantId === tenantId) ?? all.find((c) => c.tenantId === null) ?? null;
}

/**
 * Resolves upstream credentials through the control plane's broker and keeps
 * them in memory only: by entry, valid while the bundle names the same
 * version and the broker's TTL holds (an OAuth access token until 60 s before
 * it expires). Concurrent resolutions of one entry share one fetch. Secrets
 * never reach a log line, an error message or a metric label.
 */
export class CredentialBroker {
  private readonly cache = new Map<string, Cached>();
  /** oauth_token_exchange: the brokered entry (client id, secret, token endpoint) by entry id, and the exchanged tokens by (entry, version, tenant, user, client). */
  private readonly exchangeConfigs = new Map<string, { got: BrokeredCredential; expiresAt: number }>();
  private readonly userTokens = new Map<string, UserToken>();
  private readonly inflight = new Map<string, Promise<Injection>>();
  /** Entry and version → until when a failed resolution is not retried (spares the broker while it is down). */
  private readonly failed = new Map<string, { until: number; error: CredentialUnavailable }>();
  private readonly log: (msg: string) => void;
  private readonly fetch: FetchLike;
  private readonly now: () => number;
  /** Broker requests and token exchanges made (for tests and benches). */
  readonly stats = { brokerFetches: 0, tokenExchanges: 0, hits: 0 };

  constructor(private readonly o: CredentialBrokerOptions) {
    this.log = o.log ?? ((m) => console.log(`[agent] ${m}`));
    this.fetch = o.fetch ?? DEFAULT_AGENT_EGRESS.fetch;
    this.now = o.now ?? Date.now;
    this.brokered = new BrokeredTokens({ ...o, fetch: this.fetch, now: this.now, timeoutMs: o.timeoutMs ?? 10_000, unavailable: (id, reason) => new CredentialUnavailable(id, reason) });
  }

  /** oauth_user_brokered: users' access tokens from the control plane (agent/connections.ts). */
  readonly brokered: BrokeredTokens;

  /**
   * The injection for a call of `tenantId` to `serverId` under this bundle:
   * null when the bundle names no credential (open upstream); throws
   * CredentialUnavailable when it names one that cannot be resolved.
   */
  async resolve(content: BundleContent, serverId: string, tenantId: string, subject?: CallSubject): Promise<Injection | null> {
    const entry = credentialFor(content, serverId, tenantId);
    if (!entry) return null;
    // Origin binding: a secret goes only to the origin it was stored for. Checked before the cache and the broker.
    const refused = originProblem(content, entry);
    if (refused) throw new CredentialUnavailable(entry.entryId, refused);
    if (entry.kind === "oauth_token_exchange") return this.resolveExchanged(entry, tenantId, subject);
    if (entry.kind === "oauth_user_brokered") return this.brokered.resolve(entry, tenantId, subject?.principal);
    const hit = this.cache.get(entry.entryId);
    if (hit && hit.injection.version === entry.version && hit.expiresAt > this.now()) {
      this.stats.hits++;
      this.o.metrics.credential("hit");
      return hit.injection;
    }
    const key = `${entry.entryId}\u0000${entry.version}`;
    const failure = this.failed.get(key);
    if (failure && failure.until > this.now()) throw failure.error;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchEntry(entry, tenantId)
        .then(
          (injection) => {
            this.failed.delete(key);
            return injection;
          },
          (err: unknown) => {
            if (err instanceof CredentialUnavailable) this.failed.set(key, { until: this.now() + RETRY_AFTER_FAILURE_MS, error: err });
            if (this.failed.size > 10_000) this.failed.delete(this.failed.keys().next().value!);
            throw err;
          },
        )
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /**
   * Drops the exchanged tokens a new bundle no longer allows: of an entry it
   * no longer names or names at another version (rotation), and of a user
   * or grant it revokes (`revoked` is the agent's own check of the bundle's
   * revocations for the principal, the one decide() applies).
   */
  dropUserTokens(content: BundleContent, revoked: (p: Principal, serverId: string) => boolean): void {
    const current = new Map((content.credentials ?? []).map((c) => [c.entryId, c] as const));
    for (const [key, t] of this.userTokens) {
      const c = current.get(t.entryId);
      if (!c || c.version !== t.injection.version || c.kind !== "oauth_token_exchange" || revoked(t.principal, c.serverId)) this.userTokens.delete(key);
    }
    for (const [id, cfg] of this.exchangeConfigs) if (current.get(id)?.version !== cfg.got.version) this.exchangeConfigs.delete(id);
    this.brokered.drop(content, revoked);
  }

  /**
   * The vault entries whose secret this agent holds now and the version of each (what it injects), for the
   * heartbeat: brokered values (including expired ones not yet refetched: the last version used) and
   * token-exchange client configurations. Versions only, never a value.
   */
  inUse(): { entryId: string; version: number }[] {
    const out = new Map<string, number>();
    for (const [id, c] of this.cache) out.set(id, c.injection.version);
    for (const [id, cfg] of this.exchangeConfigs) out.set(id, cfg.got.version);
    return [...out].map(([entryId, version]) => ({ entryId, version }));
  }

  /** Exchanged tokens held now (tests, metrics). */
  get userTokenCount(): number {
    return this.userTokens.size;
  }

  /** Fetches every credential of a newly installed bundle whose version the cache does not hold (best effort). */
  prefetch(content: BundleContent): void {
    this.dropUserTokens(content, (p, serverId) => isRevoked(content, p, serverId));
    if (!this.o.agentKey()) return; // not enrolled yet: the first call resolves
    const names = new Set((content.credentials ?? []).map((c) => c.entryId));
    for (const id of [...this.cache.keys()]) if (!names.has(id)) this.cache.delete(id);
    for (const c of content.credentials ?? []) {
      if (c.kind === "oauth_token_exchange" || c.kind === "oauth_user_brokered") continue; // per user at call time
      if (originProblem(content, c)) {
        this.cache.delete(c.entryId);
        continue;
      }
      const hit = this.cache.get(c.entryId);
      if (hit && hit.injection.version === c.version) continue;
      // A shared entry is resolved for the server's owning tenant when that tenant has no entry of its own.
      const server = content.servers.find((s) => s.id === c.serverId);
      const tenant = c.tenantId ?? server?.tenantIds.find((t) => credentialFor(content, c.serverId, t)?.entryId === c.entryId);
      if (!tenant) continue;
      this.resolve(content, c.serverId, tenant).catch(() => {
        // Logged by fetchEntry; the next call retries.
      });
    }
  }

  /** Forgets every cached value (tests, shutdown). */
  clear(): void {
    this.cache.clear();
    this.failed.clear();
    this.userTokens.clear();
    this.exchangeConfigs.clear();
    this.brokered.clear();
  }

  /**
   * RFC 8693 at call time: the caller's validated token is exchanged at the
   * entry's token endpoint for one whose audience is the upstream, the agent
   * authenticated as the client (so `act` names it). Cached per (entry,
   * version, tenant, user, client) until the token's expiry less 30 s and
   * never past the caller's own token; one exchange in flight per key.
   */
  private async resolveExchanged(entry: BundleCredential, tenantId: string, subject: CallSubject | undefined): Promise<Injection> {
    if (!subject) throw new CredentialUnavailable(entry.entryId, "token exchange needs the caller's token (no user call)");
    const p = subject.principal;
    const key = [entry.entryId, entry.version, tenantId, p.issuer, p.user, p.client].join("\u0000");
    const hit = this.userTokens.get(key);
    if (hit && hit.expiresAt > this.now()) {
      this.stats.hits++;
      this.o.metrics.credential("hit");
      return hit.injection;
    }
    if (hit) this.userTokens.delete(key);
    const failure = this.failed.get(key);
    if (failure && failure.until > this.now()) throw failure.error;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.exchangeFor(entry, tenantId, subject)
        .then(
          ({ injection, expiresAt }) => {
            this.failed.delete(key);
            this.userTokens.set(key, { injection, expiresAt, entryId: entry.entryId, principal: p });
            if (this.userTokens.size > MAX_USER_TOKENS) this.userTokens.delete(this.userTokens.keys().next().value!);
            return injection;
          },
          (err: unknown) => {
            if (err instanceof CredentialUnavailable) this.failed.set(key, { until: this.now() + RETRY_AFTER_FAILURE_MS, error: err });
            if (this.failed.size > 10_000) this.failed.delete(this.failed.keys().next().value!);
            throw err;
          },
        )
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async exchangeFor(entry: BundleCredential, tenantId: string, subject: CallSubject): Promise<{ injection: Injection; expiresAt: number }> {
    try {
      let cfg = this.exchangeConfigs.get(entry.entryId);
      if (!cfg || cfg.got.version !== entry.version || cfg.expiresAt <= this.now()) {
        const got = await this.broker(entry, tenantId);
        if (got.kind !== "oauth_token_exchange") throw new CredentialUnavailable(entry.entryId, `the broker answered a ${got.kind} entry for a token exchange`);
        cfg = { got, expiresAt: this.now() + Math.max(0, got.ttlSeconds) * 1000 };
        this.exchangeConfigs.set(entry.entryId, cfg);
      }
      const { got } = cfg;
      const secret = clientSecretOf(got.secret);
      if (!got.oauth || !secret) throw new CredentialUnavailable(got.entryId, "token exchange without a token endpoint or client secret");
      const { url, init } = tokenExchangeRequest(got.oauth, secret, subject.token);
      this.stats.tokenExchanges++;
      const started = this.now();
      let res: Response;
      try {
        res = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000) });
      } catch (err) {
        throw new CredentialUnavailable(got.entryId, `token endpoint unreachable: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
      }
      const answer = readTokenAnswer(res.status, await readJsonCapped(res, MAX_TOKEN_ANSWER_BYTES));
      if ("problem" in answer) {
        if (answer.problem === "token_type") throw new CredentialUnavailable(got.entryId, "unsupported token type");
        throw new CredentialUnavailable(
          got.entryId,
          `the token endpoint ${answer.problem === "refused" ? "refused the token exchange" : "failed"}: ${answer.status}${answer.code ? ` (${answer.code})` : ""}`,
        );
      }
      const lifetime = answer.expiresIn !== null ? answer.expiresIn * 1000 - EXCHANGED_MARGIN_MS : DEFAULT_EXCHANGED_TTL_MS;
      const expiresAt = Math.min(started + lifetime, subject.principal.exp * 1000, cfg.expiresAt);
      this.o.metrics.credential("fetched");
      return { injection: { entryId: got.entryId, version: got.version, in: "header", name: "authorization", value: `Bearer ${answer.accessToken}` }, expiresAt };
    } catch (err) {
      this.o.metrics.credential("error");
      const e = err instanceof CredentialUnavailable ? err : new CredentialUnavailable(entry.entryId, redactUrlsIn(err instanceof Error ? err.message : String(err)));
      this.log(redactUrlsIn(e.message));
      throw e;
    }
  }

  private async fetchEntry(entry: BundleCredential, tenantId: string): Promise<Injection> {
    try {
      const got = await this.broker(entry, tenantId);
      const fetchedAt = this.now();
      let injection: Injection;
      let expiresAt = fetchedAt + Math.max(0, got.ttlSeconds) * 1000;
      if (got.kind === "oauth_client_credentials") {
        const t = await this.exchange(got);
        injection = { entryId: got.entryId, version: got.version, in: got.placement.in, name: got.placement.name, value: `Bearer ${t.accessToken}` };
        if (t.expiresIn !== null) expiresAt = Math.min(expiresAt, fetchedAt + t.expiresIn * 1000 - TOKEN_MARGIN_MS);
      } else {
        injection = { entryId: got.entryId, version: got.version, in: got.placement.in, name: got.placement.name, value: render(got) };
      }
      // Cached under the entry the broker answered with: it is the authority on which entry applies.
      this.cache.set(got.entryId, { injection, expiresAt });
      this.o.metrics.credential("fetched");
      if (got.entryId !== entry.entryId || got.version !== entry.version) {
        this.log(`credential for ${entry.serverId}: bundle names ${entry.entryId} v${entry.version}, broker answered ${got.entryId} v${got.version}`);
      }
      return injection;
    } catch (err) {
      this.o.metrics.credential("error");
      const reason = redactUrlsIn(err instanceof CredentialUnavailable ? err.message : `credential ${entry.entryId} unavailable: ${err instanceof Error ? err.message : String(err)}`);
      this.log(reason);
      throw err instanceof CredentialUnavailable ? err : new CredentialUnavailable(entry.entryId, redactUrlsIn(err instanceof Error ? err.message : String(err)));
    }
  }

  private async broker(entry: BundleCredential, tenantId: string): Promise<BrokeredCredential> {
    const key = this.o.agentKey();
    if (!key) throw new CredentialUnavailable(entry.entryId, "the agent is not enrolled");
    this.stats.brokerFetches++;
    const res = await (this.o.controlPlaneFetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(`${this.o.controlPlaneUrl}/api/v1/agent/credentials`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ serverId: entry.serverId, tenantId }),
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
    });
    if (res.status !== 200) {
      // The body is an error document of the control plane (no secret); keep only its code.
      const code = await res
        .json()
        .then((b: unknown) => (b as { error?: { code?: unknown } } | null)?.error?.code)
        .catch(() => undefined);
      throw new CredentialUnavailable(entry.entryId, `the broker answered ${res.status}${typeof code === "string" ? ` (${code})` : ""}`);
    }
    const got = (await res.json()) as BrokeredCredential;
    if (!got || typeof got.entryId !== "string" || typeof got.version !== "number" || !got.placement || got.secret === undefined || got.secret === null) {
      throw new CredentialUnavailable(entry.entryId, "the broker's answer is malformed");
    }
    return got;
  }

  /** RFC 6749 §4.4: client credentials → access token, at the entry's token endpoint (lib/enforcement/upstream-credential.ts). */
  private async exchange(got: BrokeredCredential): Promise<{ accessToken: string; expiresIn: number | null }> {
    const oauth = got.oauth;
    const secret = clientSecretOf(got.secret);
    if (!oauth || !secret) throw new CredentialUnavailable(got.entryId, "OAuth client credentials without a token endpoint or client secret");
    const { url, init } = clientCredentialsRequest(oauth, secret);
    this.stats.tokenExchanges++;
    let res: Response;
    try {
      res = await this.fetch(url, { ...init, signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000) });
    } catch (err) {
      throw new CredentialUnavailable(got.entryId, `token endpoint unreachable: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
    }
    const answer = readTokenAnswer(res.status, await res.json().catch(() => null));
    if ("problem" in answer) {
      if (answer.problem === "token_type") throw new CredentialUnavailable(got.entryId, "unsupported token type");
      throw new CredentialUnavailable(got.entryId, `the token endpoint answered ${answer.status}${answer.code ? ` (${answer.code})` : ""}`);
    }
    return answer;
  }
}

/**
 * Why an entry must not be injected into a call to its server's upstream
 * under this bundle: suspended by the control plane (the upstream moved to
 * another origin), or bound to an origin other than the upstream's. Null when
 * it may. An entry without `origin` comes from a bundle older than binding.
 */
export function originProblem(content: BundleContent, entry: BundleCredential): string | null {
  if (entry.suspended) return `suspended: stored for ${entry.suspended.from || "another upstream"}, the upstream is now ${entry.suspended.to}`;
  if (entry.origin === undefined) return null;
  const server = content.servers.find((s) => s.id === entry.serverId);
  if (!server?.upstreamUrl) return null;
  let origin = "";
  try {
    origin = new URL(server.upstreamUrl).origin;
  } catch {
    // unparseable: no origin, so no match
  }
  return origin === entry.origin ? null : `bound to ${entry.origin || "no origin"}, the upstream is ${origin || "unknown"}`;
}

/** A JSON body read up to `max` bytes (null when longer, absent or not JSON): a token endpoint cannot make the agent buffer without bound. */
async function readJsonCapped(res: Response, max: number): Promise<unknown> {
  if (!res.body) return null;
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    return null;
  }
}

/** The value that goes into the header or parameter. */
function render(got: BrokeredCredential): string {
  if (got.kind === "oauth_client_credentials" || got.kind === "oauth_token_exchange" || got.kind === "oauth_user_brokered")
    throw new CredentialUnavailable(got.entryId, "OAuth credentials are exchanged, not sent");
  const v = staticCredentialValue(got.kind, got.placement, got.secret);
  if ("problem" in v) throw new CredentialUnavailable(got.entryId, v.problem);
  return v.value;
}

/** Applies an injection to an upstream request: the URL (query) or headers (header). */
export function inject(url: string, headers: Record<string, string>, injection: Injection | null): string {
  if (!injection) return url;
  return placeCredential(url, headers, { in: injection.in, name: injection.name }, injection.value);
}
