import { EventEmitter } from "node:events";
import { eq } from "drizzle-orm";
import type { DbHandle } from "@/db/client";
import { fleets } from "@/db/schema";
import { BUNDLE_CHANNEL } from "@/lib/bundles/service";

/**
 * Wakes long-polling agents when a bundle is published.
 *
 * Publishing runs `select pg_notify('mandate_bundles', fleetId || ':' || revision)`
 * in its transaction, so the notification arrives only after commit, on every
 * process sharing the database. Each database handle holds ONE `LISTEN` on
 * that channel (opened on first use) and fans the payloads out to the
 * in-process waiters through an EventEmitter keyed by fleet id; waiting costs
 * no connection and no polling.
 */

interface Hub {
  emitter: EventEmitter;
  /** Resolves once LISTEN is in place; rejected attempts are retried on next use. */
  ready: Promise<() => Promise<void>> | null;
}

// Kept on globalThis (like the handle in lib/db.ts) so a dev-mode module reload reuses the same LISTEN.
const g = globalThis as unknown as { __mandateBundleHubs?: WeakMap<DbHandle, Hub> };
const hubs = (g.__mandateBundleHubs ??= new WeakMap());

/** Splits `<fleetId>:<revision>`; null for anything else. */
export function parseBundlePayload(payload: string): { fleetId: string; revision: number } | null {
  const m = /^(.+):(\d{1,15})$/.exec(payload);
  return m ? { fleetId: m[1]!, revision: Number(m[2]) } : null;
}

function hubFor(handle: DbHandle): Hub {
  let hub = hubs.get(handle);
  if (!hub) {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0); // one listener per waiting agent
    hub = { emitter, ready: null };
    hubs.set(handle, hub);
  }
  return hub;
}

async function listening(handle: DbHandle): Promise<Hub> {
  const hub = hubFor(handle);
  if (!hub.ready) {
    hub.ready = handle
      .listen(BUNDLE_CHANNEL, (payload) => {
        const p = parseBundlePayload(payload);
        if (p) hub.emitter.emit(p.fleetId, p.revision);
      })
      .catch((err: unknown) => {
        hub.ready = null;
        throw err;
      });
  }
  await hub.ready;
  return hub;
}

/** Opens the handle's LISTEN now (optional: waitForRevision opens it on first use). */
export async function startBundleListener(handle: DbHandle): Promise<void> {
  await listening(handle);
}

/** Stops the handle's LISTEN (tests; the app keeps it for the life of the process). */
export async function stopBundleListener(handle: DbHandle): Promise<void> {
  const hub = hubs.get(handle);
  if (!hub?.ready) return;
  const ready = hub.ready;
  hub.ready = null;
  hub.emitter.removeAllListeners();
  hubs.delete(handle);
  const unlisten = await ready.catch(() => null);
  await unlisten?.();
}

/** Number of in-process waiters on a fleet (diagnostics and tests). */
export function waiterCount(handle: DbHandle, fleetId: string): number {
  return hubs.get(handle)?.emitter.listenerCount(fleetId) ?? 0;
}

const newer = (revision: number | null | undefined, after: number | null) => revision != null && (after === null || revision > after);

/**
 * Waits until the fleet has a revision newer than `afterRevision` (any
 * revision when null: "no bundle yet"). Resolves true when one is announced
 * — or already active — and false on timeout or abort.
 *
 * Order matters: subscribe first, then read the active revision. A publish
 * that commits between the caller's own read and the subscription sends its
 * notification before anyone listens; the read after subscribing sees it.
 */
export async function waitForRevision(handle: DbHandle, fleetId: string, afterRevision: number | null, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted || timeoutMs <= 0) return false;
  const hub = await listening(handle);
  if (signal?.aborted) return false;
  return new Promise<boolean>((resolve, reject) => {
    let settled = false;
    const onRevision = (revision: number) => {
      if (newer(revision, afterRevision)) settle(true);
    };
    const onAbort = () => settle(false);
    const timer = setTimeout(() => settle(false), timeoutMs);
    function cleanup() {
      settled = true;
      clearTimeout(timer);
      hub.emitter.off(fleetId, onRevision);
      signal?.removeEventListener("abort", onAbort);
    }
    function settle(value: boolean) {
      if (settled) return;
      cleanup();
      resolve(value);
    }
    hub.emitter.on(fleetId, onRevision);
    signal?.addEventListener("abort", onAbort, { once: true });
    // Re-check after subscribing (see above).
    handle.db
      .select({ activeRevision: fleets.activeRevision })
      .from(fleets)
      .where(eq(fleets.id, fleetId))
      .then(
        ([row]) => {
          if (newer(row?.activeRevision, afterRevision)) settle(true);
        },
        (err: unknown) => {
          if (settled) return;
          cleanup();
          reject(err);
        },
      );
  });
}
