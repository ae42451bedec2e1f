import type { BundleContent, BundleCredential } from "@/lib/enforcement/bundle";
import type { Principal } from "@/lib/enforcement/token";
import { connectionTokenAnswer, type ConnectionTokenAnswer } from "@/lib/connections/contract";

/**
 * Brokered per-user OAuth at the agent (issue 13, docs/upstreams.md): for a
 * server whose entry is `oauth_user_brokered`, each call goes upstream with
 * the calling user's own access token, which the agent asks the control
 * plane for (`POST /api/v1/agent/connections/token`, the shared zod contract
 * in lib/connections/contract.ts). The refresh token never leaves the control
 * plane. Tokens are cached in memory per (entry, version, tenant, issuer,
 * user) until the control plane's `useUntil` and dropped when a bundle cuts
 * the connection (disconnect, revocation, failed refresh: live section
 * `connectionCuts`), revokes the user (`isRevoked`), or names the entry at
 * another version. A user without a usable connection gets ConnectionRequired:
 * the proxy answers it as a URL elicitation to the control plane's connect page
 * (agent/approval.ts `connectAnswer`).
 */

/** A call needs the user to connect the upstream first; carries the control plane's connect page. Holds no secret. */
export class ConnectionRequired extends Error {
  constructor(
    readonly entryId: string,
    readonly answer: Extract<ConnectionTokenAnswer, { status: "connect" }>,
  ) {
    super(`credential ${entryId}: the user must connect the upstream (${answer.reason})`);
    this.name = "ConnectionRequired";
  }
}

const cutKey = (tenantId: string, serverId: string, user: string) => `${tenantId}\u0000${serverId}\u0000${user}`;

/** Users' access tokens held at most (oldest dropped first). */
const MAX_TOKENS = 10_000;
const ANSWER_MAX_BYTES = 64 * 1024;

interface Held {
  value: string;
  version: number;
  entryId: string;
  tenantId: string;
  serverId: string;
  principal: Principal;
  /** The cut of (tenant, server, user) in force when it was fetched: a different cut in a later bundle drops it (no clock comparison between agent and control plane). */
  cutAtFetch: string | undefined;
  expiresAt: number;
}

export interface BrokeredTokensOptions {
  controlPlaneUrl: string;
  agentKey: () => string | null;
  fetch: (url: string, init: RequestInit) => Promise<Response>;
  /** The agent's control-plane fetch when it has one (egress guard for the control plane); else `fetch`. */
  controlPlaneFetch?: (url: string, init: RequestInit) => Promise<Response>;
  timeoutMs: number;
  now: () => number;
  /** The broker's own error (CredentialUnavailable), so the proxy fails closed the same way. */
  unavailable: (entryId: string, reason: string) => Error;
}

/** The header value for one call: `Bearer <the user's upstream access token>`. Holds a token: never log it. */
export interface UserInjection {
  entryId: string;
  version: number;
  in: "header";
  name: "authorization";
  value: string;
}

export class BrokeredTokens {
  private readonly held = new Map<string, Held>();
  private readonly inflight = new Map<string, Promise<UserInjection>>();
  /** (tenant, server, user) → the `before` of its cut in the bundle last installed. */
  private cuts = new Map<string, string>();
  /** Bumped by every drop(): a token whose fetch spanned a new bundle is used for its call but not kept (the bundle may cut or revoke it). */
  private generation = 0;
  readonly stats = { fetches: 0, hits: 0 };

  constructor(private readonly o: BrokeredTokensOptions) {}

  get count(): number {
    return this.held.size;
  }

  /** The user's token for a call of `subject` to the entry's server in `tenantId`. */
  async resolve(entry: BundleCredential, tenantId: string, principal: Principal | undefined): Promise<UserInjection> {
    if (!principal) throw this.o.unavailable(entry.entryId, "brokered per-user OAuth needs the caller (no user call)");
    const key = [entry.entryId, entry.version, tenantId, principal.issuer, principal.user].join("\u0000");
    const hit = this.held.get(key);
    if (hit && hit.expiresAt > this.o.now()) {
      this.stats.hits++;
      return this.injection(hit);
    }
    if (hit) this.held.delete(key);
    let p = this.inflight.get(key);
    if (!p) {
      const generation = this.generation;
      p = this.fetchToken(entry, tenantId, principal)
        .then((h) => {
          if (generation !== this.generation) return this.injection(h);
          this.held.set(key, h);
          if (this.held.size > MAX_TOKENS) this.held.delete(this.held.keys().next().value!);
          return this.injection(h);
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /**
   * Drops what a new bundle no longer allows: tokens of an entry it no longer
   * names (or names at another version or kind), of a connection it cuts
   * after the token was fetched, and of a user it revokes.
   */
  drop(content: BundleContent, revoked: (p: Principal, serverId: string) => boolean): void {
    const current = new Map((content.credentials ?? []).map((c) => [c.entryId, c] as const));
    const cuts = new Map<string, string>();
    for (const c of content.connectionCuts ?? []) {
      const k = cutKey(c.tenantId, c.serverId, c.user);
      if (c.before > (cuts.get(k) ?? "")) cuts.set(k, c.before);
    }
    this.cuts = cuts;
    this.generation++;
    for (const [key, h] of this.held) {
      const c = current.get(h.entryId);
      const cut = cuts.get(cutKey(h.tenantId, h.serverId, h.principal.user));
      if (!c || c.version !== h.version || c.kind !== "oauth_user_brokered" || (cut !== undefined && cut !== h.cutAtFetch) || revoked(h.principal, h.serverId)) this.held.delete(key);
    }
  }

  clear(): void {
    this.held.clear();
  }

  private injection(h: Held): UserInjection {
    return { entryId: h.entryId, version: h.version, in: "header", name: "authorization", value: `Bearer ${h.value}` };
  }

  private async fetchToken(entry: BundleCredential, tenantId: string, principal: Principal): Promise<Held> {
    const key = this.o.agentKey();
    if (!key) throw this.o.unavailable(entry.entryId, "the agent is not enrolled");
    this.stats.fetches++;
    const cutAtFetch = this.cuts.get(cutKey(tenantId, entry.serverId, principal.user));
    let res: Response;
    try {
      res = await (this.o.controlPlaneFetch ?? this.o.fetch)(`${this.o.controlPlaneUrl}/api/v1/agent/connections/token`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ serverId: entry.serverId, tenantId, user: principal.user }),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (err) {
      throw this.o.unavailable(entry.entryId, `the control plane could not be reached for the user's token (${err instanceof Error ? err.name : "error"})`);
    }
    const text = await res.text().catch(() => "");
    if (res.status !== 200) {
      let code: unknown;
      try {
        code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
      } catch {
        code = undefined;
      }
      throw this.o.unavailable(entry.entryId, `the control plane answered ${res.status}${typeof code === "string" && code.length < 64 ? ` (${code})` : ""} for the user's token`);
    }
    let answer: ConnectionTokenAnswer;
    try {
      if (text.length > ANSWER_MAX_BYTES) throw new Error("too long");
      answer = connectionTokenAnswer.parse(JSON.parse(text));
    } catch {
      throw this.o.unavailable(entry.entryId, "the control plane's token answer is malformed");
    }
    if (answer.status === "connect") throw new ConnectionRequired(entry.entryId, answer);
    const until = Date.parse(answer.useUntil);
    // Never past the caller's own token either.
    const expiresAt = Math.min(until, principal.exp * 1000);
    return { value: answer.accessToken, version: entry.version, entryId: entry.entryId, tenantId, serverId: entry.serverId, principal, cutAtFetch, expiresAt };
  }
}
