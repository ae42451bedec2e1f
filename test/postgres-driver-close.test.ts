/**
 * postgres.js 3.4.9 defect (porsager/postgres#1154, #1208, #1199): when a
 * connection's backend dies, a write the driver had scheduled with
 * setImmediate runs on the nulled socket. Unpatched, that throws a TypeError
 * from a timer (nothing can catch it: it ends the control plane) and the query
 * it carried never settles (a reserved connection released after the failure
 * leaves the pool hanging for every later query).
 *
 * The committed patch (patches/postgres+3.4.9.patch, applied by `postinstall`
 * through patch-package) settles those queries with CONNECTION_CLOSED, as the
 * upstream fix #1209 does. Both scenarios below hung or threw before it.
 */
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL must point at a PostgreSQL server for this test");

/** The query's outcome, or "hang" when it has not settled after `ms`. */
const settle = async (q: Promise<unknown>, ms = 4000): Promise<string> =>
  Promise.race([
    q.then(
      () => "ok",
      (e: { code?: string }) => `error ${e.code ?? "?"}`,
    ),
    new Promise<string>((r) => setTimeout(() => r("hang"), ms).unref()),
  ]);

describe("postgres.js: a write scheduled on a connection whose backend died", () => {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  let sql: postgres.Sql;
  let killer: postgres.Sql;

  beforeAll(() => {
    // Prepend so this test sees the driver's throw before Vitest reports it as an unhandled error.
    process.prependListener("uncaughtException", onUncaught);
    sql = postgres(url, { max: 2, onnotice: () => {} });
    killer = postgres(url, { max: 1 });
  });
  afterAll(async () => {
    process.removeListener("uncaughtException", onUncaught);
    await sql.end({ timeout: 1 });
    await killer.end({ timeout: 1 });
  });

  it("a transaction whose backend is terminated rejects CONNECTION_CLOSED, the process does not throw, and the pool goes on", async () => {
    let pid: number | null = null;
    const tx = sql.begin(async (t) => {
      const [row] = await t<{ pid: number }[]>`select pg_backend_pid() as pid`;
      pid = row!.pid;
      await t`select pg_sleep(3)`;
    });
    while (pid === null) await new Promise((r) => setTimeout(r, 10));
    await killer`select pg_terminate_backend(${pid})`;
    expect(await settle(tx)).toBe("error CONNECTION_CLOSED");
    // The transaction's own ROLLBACK was the write on the null socket (#1208): give its immediate a turn.
    await new Promise((r) => setTimeout(r, 50));
    expect(uncaught.map(String)).toEqual([]);
    expect(await settle(sql`select 1`)).toBe("ok");
  });

  it("a reserved connection released after its backend died does not leave later queries unsettled", async () => {
    const reserved = await sql.reserve();
    const [{ pid }] = (await reserved`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
    const sleeping = settle(reserved`select pg_sleep(3)`);
    await new Promise((r) => setTimeout(r, 100));
    await killer`select pg_terminate_backend(${pid})`;
    expect(await sleeping).toBe("error CONNECTION_CLOSED");
    reserved.release();
    // The next queries may fail (they landed on the dead connection) but every one settles, and the pool recovers.
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) outcomes.push(await settle(sql`select ${i}::int as i`));
    expect(outcomes).not.toContain("hang");
    expect(outcomes.at(-1)).toBe("ok");
    expect(uncaught.map(String)).toEqual([]);
  });
});
