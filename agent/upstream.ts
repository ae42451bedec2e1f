import { Pool, type Dispatcher } from "undici";

/** Most upstream origins with a pool of their own; past it the least recently opened pool is closed. */
export const MAX_UPSTREAM_POOLS = 256;
/** Connections kept per upstream origin (further requests queue). */
export const UPSTREAM_CONNECTIONS = 128;

/**
 * Keep-alive connection pools to the upstreams, one per origin (undici
 * `Pool`, node streams: no WHATWG fetch or web streams on the hot path).
 * Redirects are never followed (as `redirect: "manual"`).
 */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  request(url: string, opts: { method: string; headers: Record<string, string>; body: string | null; signal: AbortSignal }): Promise<Dispatcher.ResponseData> {
    const u = new URL(url);
    let pool = this.pools.get(u.origin);
    if (!pool) {
      if (this.pools.size >= MAX_UPSTREAM_POOLS) {
        const [oldest, p] = this.pools.entries().next().value!;
        this.pools.delete(oldest);
        void p.close().catch(() => {});
      }
      pool = new Pool(u.origin, { connections: UPSTREAM_CONNECTIONS, keepAliveTimeout: 10_000, maxResponseSize: -1 });
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
