import { and, eq } from "drizzle-orm";
import { z } from "zod";
import type { Db, DbHandle } from "@/db/client";
import { bundles, fleets, type Agent, type Bundle } from "@/db/schema";
import { servedBundle } from "./service";
import { waitForRevision } from "./bundle-waiter";

export const MAX_WAIT_SECONDS = 60;

export const bundleQuery = z.object({
  wait: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).default(0).describe(`Long poll: hold the request up to this many seconds (0–${MAX_WAIT_SECONDS}) until a newer revision is published`),
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

/** The active bundle's identity, without its (possibly large) content. */
type Head = Pick<Bundle, "id" | "revision" | "sha256">;

async function activeHead(db: Db, fleetId: string): Promise<Head | null> {
  const [row] = await db
    .select({ id: bundles.id, revision: bundles.revision, sha256: bundles.sha256 })
    .from(fleets)
    .innerJoin(bundles, and(eq(bundles.fleetId, fleets.id), eq(bundles.revision, fleets.activeRevision)))
    .where(eq(fleets.id, fleetId));
  return row ?? null;
}

// A publish wakes every waiting agent of the fleet at once; they all want the
// same immutable bundle. Serialize it once per process (bounded; misses coalesce).
const BODY_CACHE_SIZE = 32;
const bodies = new Map<string, Promise<string | null>>();

function bundleBody(db: Db, id: string): Promise<string | null> {
  let body = bodies.get(id);
  if (!body) {
    body = db
      .select()
      .from(bundles)
      .where(eq(bundles.id, id))
      .then(([b]) => (b ? JSON.stringify(servedBundle(b)) : null));
    body.then(
      (v) => v === null && bodies.delete(id),
      () => bodies.delete(id),
    );
    bodies.set(id, body);
    if (bodies.size > BODY_CACHE_SIZE) bodies.delete(bodies.keys().next().value!);
  }
  return body;
}

const headersFor = (b: Head) => ({ etag: etagOf(b), "cache-control": "no-store" });

async function ok(db: Db, b: Head): Promise<Response> {
  const body = await bundleBody(db, b.id);
  if (body === null) return noBundle(); // deleted with its fleet in the meantime
  return new Response(body, { status: 200, headers: { "content-type": "application/json; charset=utf-8", ...headersFor(b) } });
}
const notModified = (b: Head) => new Response(null, { status: 304, headers: headersFor(b) });
const noBundle = () =>
  new Response(JSON.stringify({ error: { code: "not_found", message: "No bundle published for this fleet yet" } }), {
    status: 404,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });

/** Whether the agent already holds the active bundle (or nothing is published yet). */
function upToDate(current: Head | null, q: BundleQuery, ifNoneMatch: string | null): boolean {
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
  const current = await activeHead(handle.db, fleetId);
  if (current && !upToDate(current, q, ifNoneMatch)) return ok(handle.db, current);
  if (q.wait > 0) {
    // The agent holds the active revision (or nothing is published): wait for a newer one.
    await waitForRevision(handle, fleetId, current?.revision ?? null, q.wait * 1000, signal);
    // Answer with the state at the end of the wait, whatever ended it (a publish may race the timer).
    const next = await activeHead(handle.db, fleetId);
    if (!next) return noBundle();
    return upToDate(next, q, ifNoneMatch) ? notModified(next) : ok(handle.db, next);
  }
  return current ? notModified(current) : noBundle();
}
