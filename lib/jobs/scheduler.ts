import { hostname } from "node:os";
import { sql } from "drizzle-orm";
import type { Db } from "@/db/client";

/**
 * Scheduled jobs that run once per interval across every control-plane
 * replica sharing the database (issue 15), not once per replica.
 *
 * Each replica keeps its own timer. When it fires, `runIfDue` opens a
 * transaction and takes `pg_try_advisory_xact_lock` on the job's name: a
 * replica that does not get it returns "busy" (another replica is running
 * the job now). The holder reads the job's row in `scheduled_jobs`; if the
 * last run started less than 90% of the interval ago it returns "not_due"
 * (another replica ran it this interval); otherwise it records the start and
 * runs the job inside the same transaction (as a savepoint), so the job's
 * work and its record commit together and the lock is held until then. A
 * failed job rolls back its savepoint, records its error (first line) and
 * waits for the next interval. On embedded PGlite there is one process and
 * one connection: the same code runs, the lock is always free.
 */
export interface Job<T = unknown> {
  /** Stable name: the advisory lock key and the `scheduled_jobs` row. */
  name: string;
  everyMs: number;
  /** Runs on the job's transaction (a Db: transactions nest as savepoints). */
  run: (db: Db) => Promise<T>;
}

export type JobOutcome<T> = { status: "ran"; result: T } | { status: "busy" | "not_due" } | { status: "failed"; error: string };

/** This process, as recorded in scheduled_jobs.last_holder (diagnostics). */
export const holderName = () => `${hostname()}:${process.pid}`;

const rowsOf = <T>(r: unknown): T[] => (Array.isArray(r) ? r : ((r as { rows?: T[] }).rows ?? [])) as T[];
const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n", 1)[0]!.slice(0, 500);

/** Runs the job if it is due and no other replica is running it (see the module comment). */
export async function runIfDue<T>(db: Db, job: Job<T>, opts: { now?: number; holder?: string } = {}): Promise<JobOutcome<T>> {
  const now = opts.now ?? Date.now();
  return db.transaction(async (tx) => {
    const [lock] = rowsOf<{ got: boolean }>(await tx.execute(sql`select pg_try_advisory_xact_lock(hashtext(${`mandate.job.${job.name}`})) as got`));
    if (!lock?.got) return { status: "busy" } as const;
    await tx.execute(sql`insert into scheduled_jobs (name) values (${job.name}) on conflict do nothing`);
    const [row] = rowsOf<{ last: Date | string | null }>(await tx.execute(sql`select last_started_at as last from scheduled_jobs where name = ${job.name}`));
    if (row?.last && now - new Date(row.last).getTime() < job.everyMs * 0.9) return { status: "not_due" } as const;
    await tx.execute(
      sql`update scheduled_jobs set last_started_at = ${new Date(now).toISOString()}::timestamptz, runs = runs + 1, last_holder = ${opts.holder ?? holderName()} where name = ${job.name}`,
    );
    try {
      const result = await tx.transaction((inner) => job.run(inner as unknown as Db));
      await tx.execute(sql`update scheduled_jobs set last_finished_at = now(), last_error = null where name = ${job.name}`);
      return { status: "ran", result } as const;
    } catch (err) {
      const error = firstLine(err);
      await tx.execute(sql`update scheduled_jobs set last_finished_at = now(), last_error = ${error} where name = ${job.name}`);
      return { status: "failed", error } as const;
    }
  });
}

// One timer per (database handle, job name), kept on globalThis so a dev-mode module reload does not start a second one.
const g = globalThis as unknown as { __mandateJobs?: WeakMap<Db, Set<string>> };

/**
 * Starts a job's timer (unref'd: it never keeps the process alive). A tick
 * never overlaps the previous one in this process; across replicas runIfDue
 * decides. `onResult` logs what a run did. Returns the stop function.
 */
export function startJob<T>(db: Db, job: Job<T>, onResult?: (r: JobOutcome<T>) => void, tickMs = job.everyMs, opts: { firstTickMs?: number } = {}): () => void {
  const jobs = (g.__mandateJobs ??= new WeakMap());
  const names = jobs.get(db) ?? new Set<string>();
  jobs.set(db, names);
  if (names.has(job.name)) return () => {};
  names.add(job.name);
  let running = false;
  const tick = () => {
    if (running) return;
    running = true;
    runIfDue(db, job)
      .then(
        (r) => {
          if (r.status === "failed") console.error(`[mandate] job ${job.name} failed: ${r.error}`);
          onResult?.(r);
        },
        (err: unknown) => console.error(`[mandate] job ${job.name} could not run: ${firstLine(err)}`),
      )
      .finally(() => (running = false));
  };
  const timer = setInterval(tick, tickMs);
  timer.unref();
  // An optional early first tick (a job that is due runs soon after a start, not one interval later).
  const first = opts.firstTickMs !== undefined ? setTimeout(tick, opts.firstTickMs) : undefined;
  first?.unref();
  return () => {
    clearInterval(timer);
    if (first) clearTimeout(first);
    names.delete(job.name);
  };
}
