import { z } from "zod";
import type { DbHandle } from "@/db/client";
import type { Agent, Bundle } from "@/db/schema";
import { activeBundle, servedBundle } from "./service";
import { waitForRevision } from "./bundle-waiter";

export const MAX_WAIT_SECONDS = 60;

export const bundleQuery = z.object({
  wait: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_WAIT_SECONDS)
    .default(0)
    .describe(`Long poll: hold the request up to this many seconds (0–${MAX_WAIT_SECONDS}) until a newer revision is published`),
  after: z.coerce.number().int().min(0).optional().describe("The revision the agent holds (instead of If-None-Match); any other active revision is answered at once"),
});
export type BundleQuery = z.infer<typeof bundleQuery>;

export const etagOf = (b: Pick<Bundle, "sha256">) => `"${b.sha256}"`;

/** Whether an If-None-Match header value names this ETag (weak or strong, lists, `*`). */
export function matchesEtag(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(",").some((raw) => {
    const t = raw.trim();
    return t === "*" || t.replace(/^W\//, "") === etag;
  });
}

const headersFor = (b: Bundle) => ({ etag: etagOf(b), "cache-control": "no-store" });

function ok(b: Bundle): Response {
  return new Response(JSON.stringify(servedBundle(b)), { status: 200, headers: { "content-type": "application/json; charset=utf-8", ...headersFor(b) } });
}
const notModified = (b: Bundle) => new Response(null, { status: 304, headers: headersFor(b) });
const noBundle = () =>
  new Response(JSON.stringify({ error: { code: "not_found", message: "No bundle published for this fleet yet" } }), {
    status: 404,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });

/** Whether the agent already holds the active bundle (or nothing is published yet). */
function upToDate(current: Bundle | null, q: BundleQuery, ifNoneMatch: string | null): boolean {
  if (!current) return true;
  // The control plane is the source of truth: any other revision than the active one is stale.
  if (q.after !== undefined) return current.revision === q.after;
  return matchesEtag(ifNoneMatch, etagOf(current));
}

/**
 * GET /api/v1/agent/bundle: the agent's fleet's active bundle. With a
 * matching If-None-Match (or `after`) it answers 304, or — with `wait` —
 * holds the request until a newer revision is published (200) or the wait
 * ends (304; 404 when still nothing is published).
 */
export async function serveBundle(opts: { handle: DbHandle; agent: Pick<Agent, "fleetId">; query: BundleQuery; ifNoneMatch: string | null; signal?: AbortSignal }): Promise<Response> {
  const { handle, agent, query: q, ifNoneMatch, signal } = opts;
  const fleetId = agent.fleetId;
  const current = await activeBundle(handle.db, fleetId);
  if (!upToDate(current, q, ifNoneMatch)) return ok(current!);
  if (q.wait > 0) {
    // The agent holds the active revision (or nothing is published): wait for a newer one.
    await waitForRevision(handle, fleetId, current?.revision ?? null, q.wait * 1000, signal);
    // Answer with the state at the end of the wait, whatever ended it (a publish may race the timer).
    const next = await activeBundle(handle.db, fleetId);
    if (!next) return noBundle();
    return upToDate(next, q, ifNoneMatch) ? notModified(next) : ok(next);
  }
  return current ? notModified(current) : noBundle();
}
