import { createHash } from "node:crypto";
import { eq, lt, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { signInCounters } from "@/db/schema";

/** Limits of one kind of key: at most `max` attempts per fixed window of `windowSeconds`. */
export interface WindowLimit {
  key: string;
  max: number;
}

/** The counter key of an account: a hash, so the table holds no e-mail addresses (nor the unknown ones people typed). */
export const accountKey = (email: string) => `acct:${createHash("sha256").update(email.slice(0, 320)).digest("hex")}`;
/** The counter key of a client address. */
export const addressKey = (address: string) => `addr:${address.slice(0, 64)}`;

/**
 * Counts one attempt against every key, atomically (one upsert in the
 * database every control-plane replica shares), before any work is done, so
 * concurrent guesses cannot all pass a check made before the first failure
 * lands. Returns 0 when every key is within its limit, else the seconds until
 * the longest-blocked key's window ends.
 */
export async function takeAttempt(db: Db, limits: WindowLimit[], windowSeconds: number): Promise<number> {
  const window = sql`(${windowSeconds} * interval '1 second')`;
  const expired = sql`${signInCounters.windowStartedAt} <= now() - ${window}`;
  const rows = await db
    .insert(signInCounters)
    .values(limits.map((l) => ({ key: l.key, windowStartedAt: sql`now()`, attempts: 1 })))
    .onConflictDoUpdate({
      target: signInCounters.key,
      set: {
        attempts: sql`case when ${expired} then 1 else ${signInCounters.attempts} + 1 end`,
        windowStartedAt: sql`case when ${expired} then now() else ${signInCounters.windowStartedAt} end`,
      },
    })
    .returning({
      key: signInCounters.key,
      attempts: signInCounters.attempts,
      remaining: sql<number>`ceil(extract(epoch from (${signInCounters.windowStartedAt} + ${window} - now())))::int`,
    });
  let wait = 0;
  for (const r of rows) {
    const max = limits.find((l) => l.key === r.key)?.max ?? 0;
    if (r.attempts > max) wait = Math.max(wait, Math.max(1, Number(r.remaining)));
  }
  return wait;
}

/** Forgets a key's attempts (an account after a successful sign-in). */
export async function clearAttempts(db: Db, key: string): Promise<void> {
  await db.delete(signInCounters).where(eq(signInCounters.key, key));
}

/** Gives one attempt back to a key (an address whose attempt succeeded: only failures should use up its budget). */
export async function refundAttempt(db: Db, key: string): Promise<void> {
  await db
    .update(signInCounters)
    .set({ attempts: sql`greatest(${signInCounters.attempts} - 1, 0)` })
    .where(eq(signInCounters.key, key));
}

/** Deletes counters whose window ended long ago; the table stays as small as the set of recent guessers. */
export async function sweepCounters(db: Db, windowSeconds: number): Promise<void> {
  await db.delete(signInCounters).where(lt(signInCounters.windowStartedAt, sql`now() - ${windowSeconds * 2} * interval '1 second'`));
}
