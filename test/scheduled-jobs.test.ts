/**
 * Scheduled jobs across control-plane replicas (issue 15): a job runs once
 * per interval however many processes tick it (advisory lock + the last
 * start in scheduled_jobs), a failed run records its error and rolls its work
 * back, and the retention and vault jobs go through it. Two real Node
 * processes on PostgreSQL; the single-process behaviour on both drivers.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execRows } from "@/lib/decisions/rollups";
import { runIfDue } from "@/lib/jobs/scheduler";
import { createTestDb, type TestDb } from "./db";

let t: TestDb;
beforeAll(async () => {
  t = await createTestDb();
  await t.db.execute(sql`create table job_marks (job text not null, pid integer not null, at timestamptz not null default now())`);
});
afterAll(() => t.close());

const marks = async (job: string) => execRows<{ pid: number }>(t.db, sql`select pid from job_marks where job = ${job}`);
const jobRow = async (job: string) =>
  (await execRows<{ runs: string; last_error: string | null; last_holder: string | null }>(t.db, sql`select runs::text as runs, last_error, last_holder from scheduled_jobs where name = ${job}`))[0];

describe("scheduled jobs (one process)", () => {
  it("runs when due, then not again within the interval, then again after it", async () => {
    const job = { name: "t.once", everyMs: 60_000, run: async (db: typeof t.db) => void (await db.execute(sql`insert into job_marks (job, pid) values ('t.once', 1)`)) };
    const now = Date.now();
    expect((await runIfDue(t.db, job, { now })).status).toBe("ran");
    expect((await runIfDue(t.db, job, { now: now + 30_000 })).status).toBe("not_due");
    expect((await runIfDue(t.db, job, { now: now + 60_000 })).status).toBe("ran");
    expect(await marks("t.once")).toHaveLength(2);
    expect(await jobRow("t.once")).toMatchObject({ runs: "2", last_error: null });
  });

  it("a failed run rolls its work back, records the error and waits for the next interval", async () => {
    const job = {
      name: "t.fail",
      everyMs: 60_000,
      run: async (db: typeof t.db) => {
        await db.execute(sql`insert into job_marks (job, pid) values ('t.fail', 1)`);
        throw new Error("upstream down\nstack…");
      },
    };
    const now = Date.now();
    expect(await runIfDue(t.db, job, { now })).toEqual({ status: "failed", error: "upstream down" });
    expect(await marks("t.fail")).toHaveLength(0);
    expect(await jobRow("t.fail")).toMatchObject({ runs: "1", last_error: "upstream down" });
    expect((await runIfDue(t.db, job, { now: now + 1000 })).status).toBe("not_due");
  });
});

describe.skipIf(!process.env.DATABASE_URL)("scheduled jobs across processes (PostgreSQL)", () => {
  const fixture = path.join(process.cwd(), "test", "fixtures", "job-runner.ts");
  const runner = (args: (string | number)[]) =>
    new Promise<{ pid: number; outcomes: string[] }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", fixture, t.url!, ...args.map(String)], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!)) : reject(new Error(`runner exited ${code}: ${err}`))));
    });

  it("two replicas ticking the same job: it runs once per interval, never at the same time", async () => {
    // Interval 2 s; each replica ticks every 150 ms for ~3.4 s; a run takes 300 ms.
    const startAt = Date.now() + 4000; // both processes loaded before the first tick
    const [a, b] = await Promise.all([runner(["t.replicas", 2000, startAt, 20, 150, 300]), runner(["t.replicas", 2000, startAt, 20, 150, 300])]);
    expect(a.pid).not.toBe(b.pid);
    const ran = [...a.outcomes, ...b.outcomes].filter((o) => o === "ran").length;
    const rows = await marks("t.replicas");
    // Every run is recorded once, whichever replica ran it; at least two intervals passed.
    expect(rows).toHaveLength(ran);
    expect(await jobRow("t.replicas")).toMatchObject({ runs: String(ran) });
    expect(ran).toBeGreaterThanOrEqual(2);
    // Never twice in one interval: consecutive starts are at least 90% of the interval apart (each replica alone would run every tick it is due).
    const gaps = await execRows<{ gap: number | string }>(
      t.db,
      sql`select extract(epoch from at - lag(at) over (order by at)) * 1000 as gap from job_marks where job = 't.replicas' order by at offset 1`,
    );
    expect(gaps.length).toBe(ran - 1);
    for (const g of gaps) expect(Number(g.gap)).toBeGreaterThanOrEqual(1800);
    // While one replica ran the job, the other found the lock taken or the run done.
    expect([...a.outcomes, ...b.outcomes].filter((o) => o === "busy" || o === "not_due").length).toBeGreaterThan(0);
    expect(a.outcomes.includes("ran") || b.outcomes.includes("ran")).toBe(true);
    console.log(`[jobs] replica ${a.pid}: ${a.outcomes.join(" ")}\n[jobs] replica ${b.pid}: ${b.outcomes.join(" ")}`);
  }, 30_000);
});
