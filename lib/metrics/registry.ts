import "server-only";
import { collectDefaultMetrics, Histogram, Registry } from "prom-client";

/**
 * The control plane's metrics registry (GET /api/v1/metrics): Node's default
 * process metrics and the admin API's request durations. One per process, kept
 * on globalThis because Next.js may load a module once per route bundle.
 */
interface ControlPlaneMetrics {
  registry: Registry;
  apiSeconds: Histogram<"method" | "route" | "status">;
}

const KEY = Symbol.for("mandate.metrics");
const holder = globalThis as unknown as { [KEY]?: ControlPlaneMetrics };

export function controlPlaneMetrics(): ControlPlaneMetrics {
  if (holder[KEY]) return holder[KEY];
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const apiSeconds = new Histogram({
    name: "mandate_api_request_seconds",
    help: "Admin API requests by method, route pattern and status, time to answer.",
    labelNames: ["method", "route", "status"] as const,
    // Reads answer in milliseconds; publishing a bundle or an impact replay takes seconds.
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  holder[KEY] = { registry, apiSeconds };
  return holder[KEY];
}

/** The route pattern of a path: each dynamic segment's value replaced by its name, so labels stay few. */
export function routePattern(pathname: string, params: Record<string, string | string[] | undefined>): string {
  const names = new Map<string, string>();
  for (const [k, v] of Object.entries(params)) for (const s of Array.isArray(v) ? v : v ? [v] : []) names.set(s, k);
  return pathname
    .split("/")
    .map((seg) => {
      const name = names.get(decodeURIComponent(seg));
      return name ? `{${name}}` : seg;
    })
    .join("/");
}

/** Wraps a route handler to time it; the handler's answer is returned as is. */
export function timed<R extends Request & { nextUrl: URL }, C extends { params: Promise<object> }>(handler: (req: R, ctx: C) => Promise<Response>) {
  return async (req: R, ctx: C): Promise<Response> => {
    const t0 = performance.now();
    const res = await handler(req, ctx);
    try {
      const params = ((await ctx.params) ?? {}) as Record<string, string | string[] | undefined>;
      controlPlaneMetrics().apiSeconds.observe({ method: req.method, route: routePattern(req.nextUrl.pathname, params), status: String(res.status) }, (performance.now() - t0) / 1000);
    } catch {
      // Metrics never change an answer.
    }
    return res;
  };
}
