/*
 * Which earlier version of a vault entry may be made current again: one rule,
 * used by the service that does it (lib/vault/rollback.ts) and by the entry's
 * public view (each version says whether it can be restored, and why not).
 */

/** A retired version can be made current again for this long after it stopped being accepted; later, only a new secret (rotate). */
export const ROLLBACK_WINDOW_DAYS = 30;
const DAY_MS = 86_400_000;

export interface VersionFacts {
  version: number;
  status: "scheduled" | "current" | "grace" | "retired";
  activatesAt: Date | null;
  graceUntil: Date | null;
  retiredAt: Date | null;
  createdAt: Date;
  /** The upstream origin the version was stored or confirmed for; null when stored before versions recorded it. */
  boundOrigin: string | null;
}

const fmt = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

/** When a version stopped being accepted: its retirement, or the end of its grace if that has passed; null while accepted. */
export function stoppedAt(v: VersionFacts, now: Date): Date | null {
  if (v.status === "retired") return v.retiredAt ?? v.graceUntil ?? v.createdAt;
  if (v.status === "grace" && v.graceUntil && v.graceUntil <= now) return v.graceUntil;
  return null;
}

/**
 * Why `v` cannot be made current again (a sentence saying what to do instead), or null when it can:
 * it must be an earlier version that was current once, stopped less than 30 days ago (or still in its
 * grace), and stored for the server's upstream origin as it is now (`origin`).
 */
export function rollbackProblem(v: VersionFacts, currentVersion: number, origin: string, now: Date): string | null {
  const n = v.version;
  if (n === currentVersion || v.status === "current") return `Version ${n} is already the current version`;
  if (v.status === "scheduled") return `Version ${n} is scheduled${v.activatesAt ? ` for ${fmt(v.activatesAt)}` : ""}, not an earlier version: it becomes current on its own, or rotate now`;
  const stopped = stoppedAt(v, now);
  // A scheduled version replaced before its time was never current: there is nothing to go back to.
  if (!v.activatesAt || (stopped && v.activatesAt > stopped)) return `Version ${n} was never current (a scheduled version replaced before its time): rotate with a new secret instead`;
  if (stopped && stopped.getTime() < now.getTime() - ROLLBACK_WINDOW_DAYS * DAY_MS)
    return `Version ${n} stopped being accepted on ${fmt(stopped)}, more than ${ROLLBACK_WINDOW_DAYS} days ago: it can no longer be made current. Rotate with a new secret instead`;
  if (!v.boundOrigin) return `Version ${n} was stored before versions recorded their upstream origin, so Mandate cannot tell that it belongs to ${origin}: rotate (re-enter the secret) instead`;
  if (v.boundOrigin !== origin) return `Version ${n} was stored for ${v.boundOrigin} and the server's upstream is now ${origin}: it is not sent there. Rotate (re-enter the secret) instead`;
  return null;
}
