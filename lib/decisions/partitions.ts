import { sql } from "drizzle-orm";
import type { Db } from "@/db/client";

const DAY = 86_400_000;
const dayStart = (t: number) => Math.floor(t / DAY) * DAY;
const nameOf = (t: number) => `decisions_${new Date(t).toISOString().slice(0, 10).replaceAll("-", "")}`;

// Partitions this process knows exist; a miss only costs an idempotent CREATE.
const known = new WeakMap<Db, Set<string>>();

/** Creates the daily partitions covering these instants (idempotent, safe under concurrency). */
export async function ensurePartitions(db: Db, instants: number[]): Promise<void> {
  const seen = known.get(db) ?? new Set<string>();
  known.set(db, seen);
  for (const day of new Set(instants.map(dayStart))) {
    const name = nameOf(day);
    if (seen.has(name)) continue;
    const from = new Date(day).toISOString();
    const to = new Date(day + DAY).toISOString();
    try {
      await db.execute(sql.raw(`create table if not exists "${name}" partition of decisions for values from ('${from}') to ('${to}')`));
    } catch (err) {
      // Two processes creating the same partition at once: the loser sees it exists.
      if (!/already exists/.test(String((err as Error).message) + String((err as { cause?: Error }).cause?.message))) throw err;
    }
    seen.add(name);
  }
}

/** Creates partitions from today to `daysAhead` days ahead (run at start and daily). */
export const createPartitionsAhead = (db: Db, daysAhead = 7, now = Date.now()) =>
  ensurePartitions(
    db,
    Array.from({ length: daysAhead + 1 }, (_, i) => now + i * DAY),
  );

/** The first instant retention keeps: the start of the oldest day whose partition survives. */
export const retentionCutoff = (retentionDays: number, now = Date.now()) => dayStart(now - retentionDays * DAY);

/** Drops whole partitions older than the retention (days). Returns the dropped names. */
export async function dropPartitionsBefore(db: Db, retentionDays: number, now = Date.now()): Promise<string[]> {
  const cutoff = nameOf(retentionCutoff(retentionDays, now));
  const rows = (await db.execute(
    sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'decisions'`,
  )) as unknown as { rows?: { name: string }[] } | { name: string }[];
  const names = (Array.isArray(rows) ? rows : (rows.rows ?? [])).map((r) => r.name).filter((n) => /^decisions_\d{8}$/.test(n) && n < cutoff);
  for (const n of names) {
    await db.execute(sql.raw(`drop table if exists "${n}"`));
  }
  forgetPartitions(db, names);
  return names;
}

/** Forgets dropped partitions (a drop inside a transaction leaves the outer handle's memory stale). */
export function forgetPartitions(db: Db, names: string[]): void {
  for (const n of names) known.get(db)?.delete(n);
}
