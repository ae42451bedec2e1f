import type { EventEmitter } from "node:events";
import { Pool, type Dispatcher } from "undici";
import { checkUrl, EgressError, guardedConnect, guardedLookup, type EgressPolicy } from "@/lib/net/egress";
import { DEFAULT_AGENT_EGRESS } from "@/lib/net/agent";

/** Most upstream origins with a pool of their own; past it the least recently opened pool is closed. */
export const MAX_UPSTREAM_POOLS = 256;
/** Connections kept per upstream origin (further requests queue). */
export const UPSTREAM_CONNECTIONS = 128;

/**
 * Keep-alive connection pools to the upstreams, one per origin (undici
 * `Pool`, node streams: no WHATWG fetch or web streams on the hot path).
 * Redirects are never followed (as `redirect: "manual"`).
 *
 * Egress: the same guard and policy as every other outbound request
 * (lib/net/egress.ts). Each upstream URL is checked when a bundle is
 * installed (`admit`: scheme, IP literal, every address its host resolves
 * to), and each pool connects through the guard's connector, which checks
 * the resolved and the connected address once per new connection. A request
 * costs one map lookup; kept-alive connections are not checked again.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  /** Origins of the installed bundle that the policy refuses, and why. */
  private refused = new Map<string, EgressError>();
  private readonly policy: EgressPolicy;

  constructor(opts: { policy?: EgressPolicy } = {}) {
    this.policy = opts.policy ?? DEFAULT_AGENT_EGRESS.policy;
  }

  /**
   * Checks the upstream URLs of a newly installed bundle against the policy;
   * returns the refused ones (origin and why) so they can be logged. Requests
   * to a refused origin fail at once with its EgressError.
   */
  async admit(urls: string[]): Promise<Array<{ origin: string; why: string }>> {
    const refused = new Map<string, EgressError>();
    const lookup = guardedLookup(this.policy);
    await Promise.all(
      [...new Set(urls)].map(async (raw) => {
        let u: URL;
        try {
          u = checkUrl(raw, this.policy);
        } catch (err) {
          const origin = URL.canParse(raw) ? new URL(raw).origin : raw;
          refused.set(origin, err instanceof EgressError ? err : new EgressError("bad_url", "the upstream URL is not valid"));
          return;
        }
        // Every address of the host now (the connector checks again at each connection: DNS may change).
        const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => lookup(u.hostname.replace(/^\[|\]$/g, ""), { all: true }, (e) => resolve(e)));
        if (err instanceof EgressError) refused.set(u.origin, err);
      }),
    );
    this.refused = refused;
    return [...refused].map(([origin, e]) => ({ origin, why: e.message }));
  }

  /** `signal`: an AbortSignal, or an EventEmitter whose 'abort' event aborts the request (undici takes either). */
  request(url: string, opts: { method: string; headers: Record<string, string>; body: string | null; signal: AbortSignal | EventEmitter }): Promise<Dispatcher.ResponseData> {
    const u = new URL(url);
    const refused = this.refused.get(u.origin);
    if (refused) return Promise.reject(refused);
    let pool = this.pools.get(u.origin);
    if (!pool) {
      if (this.pools.size >= MAX_UPSTREAM_POOLS) {
        const [oldest, p] = this.pools.entries().next().value!;
        this.pools.delete(oldest);
        void p.close().catch(() => {});
      }
      pool = new Pool(u.origin, { connections: UPSTREAM_CONNECTIONS, keepAliveTimeout: 10_000, maxResponseSize: -1, connect: guardedConnect(this.policy) });
      this.pools.set(u.origin, pool);
    }
    return pool.request({ path: `${u.pathname}${u.search}`, method: opts.method as Dispatcher.HttpMethod, headers: opts.headers, body: opts.body, signal: opts.signal });
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.destroy().catch(() => {})));
  }
}
