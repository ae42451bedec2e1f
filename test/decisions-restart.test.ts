/**
 * "PostgreSQL restarted in the middle of a long ingestion run: every
 * acknowledged decision is stored (count them)." On a private cluster (initdb
 * + pg_ctl as the `postgres` OS user, a free port, its own socket directory),
 * never the shared server: batches go through ingestDecisions in a loop that
 * retries a failed batch as the agent does, while the test restarts the
 * server (`pg_ctl stop -m fast`, down ~1.5 s, start) mid-run.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DbHandle } from "@/db/client";
import { agents, fleetServers, fleets, servers, tenants } from "@/db/schema";
import { ingestDecisions } from "@/lib/decisions/ingest";

const run = promisify(execFile);
const BIN = "/usr/local/bin";
const BATCH = 2000; // stored as two transactions at once (lib/decisions/ingest.ts PARTS): a restart can catch one committed, one not
const RUN_MS = 8_000;

/** Runs a PostgreSQL tool as the `postgres` OS user (initdb and pg_ctl refuse root). */
const asPostgres = (tool: string, args: string[]) => run("runuser", ["-u", "postgres", "--", path.join(BIN, tool), ...args], { timeout: 60_000 });

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const idAt = (ms: number) => {
  const hex = ms.toString(16).padStart(12, "0") + "7" + randomBytes(2).toString("hex").slice(1) + (8 + (randomBytes(1)[0]! % 4)).toString(16) + randomBytes(8).toString("hex").slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};

describe("decision ingestion across a PostgreSQL restart", () => {
  let dir = "";
  let data = "";
  let port = 0;
  let started = false;
  let h: DbHandle | undefined;
  const pgCtl = (...args: string[]) => asPostgres("pg_ctl", ["-D", data, ...args]);
  const start = () => pgCtl("start", "-w", "-t", "30", "-l", path.join(dir, "server.log"), "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`);

  beforeAll(async () => {
    try {
      await run("id", ["postgres"]);
      await run(path.join(BIN, "initdb"), ["--version"]);
    } catch {
      throw new Error(`This test needs the "postgres" OS user and ${BIN}/initdb and pg_ctl (PostgreSQL server binaries) to run a private cluster`);
    }
    dir = await mkdtemp(path.join(tmpdir(), "mandate-restart-"));
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
    data = path.join(dir, "data");
    await asPostgres("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
    port = await freePort();
    await start();
    started = true;
    const admin = postgres(`postgres://postgres@127.0.0.1:${port}/postgres`, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe("create database mandate");
    } finally {
      await admin.end({ timeout: 5 });
    }
    h = await openDatabase({ url: `postgres://postgres@127.0.0.1:${port}/mandate`, max: 4 });
  }, 120_000);

  afterAll(async () => {
    await h?.close().catch(() => {});
    if (started) await pgCtl("stop", "-m", "immediate", "-w").catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("stores every acknowledged decision exactly once", async () => {
    const db = h!.db;
    await db.insert(tenants).values({ id: "ten_r", name: "restart", slug: "restart" });
    await db.insert(servers).values({ id: "srv_r", tenantId: "ten_r", name: "restart", resourceUri: "https://mcp.restart.example", upstreamUrl: "http://127.0.0.1:9/mcp" });
    await db.insert(fleets).values({ id: "flt_r", name: "restart" });
    await db.insert(fleetServers).values({ fleetId: "flt_r", serverId: "srv_r" });
    await db.insert(agents).values({ id: "agt_r", fleetId: "flt_r", name: "restart", keyHash: "0".repeat(64) });
    const agent = { id: "agt_r", fleetId: "flt_r" };

    const acknowledged = new Set<string>();
    let failures = 0;
    let retriedBatches = 0;
    let restartedAt = 0;
    let upAt = 0;
    let ackedAfterRestart = 0;
    const t0 = Date.now();
    // The restart: once ingestion is well under way, stop (fast), stay down ~1.5 s, start.
    const restart = (async () => {
      while (acknowledged.size < 3 * BATCH) await new Promise((r) => setTimeout(r, 20));
      restartedAt = Date.now();
      await pgCtl("stop", "-m", "fast", "-w");
      await new Promise((r) => setTimeout(r, 1500));
      await start();
      upAt = Date.now();
    })();

    // At least RUN_MS, and until a few batches went through the restarted server.
    while (Date.now() - t0 < RUN_MS || ackedAfterRestart < 3 * BATCH) {
      const ids = Array.from({ length: BATCH }, () => idAt(Date.now()));
      const body = ids
        .map((id, i) =>
          JSON.stringify({
            id,
            tenantId: "ten_r",
            serverId: "srv_r",
            method: "tools/call",
            tool: "list_tickets",
            user: `u${i % 7}`,
            client: "claude",
            scopes: ["tickets:read"],
            outcome: "allow",
            latencyUs: 100,
          }),
        )
        .join("\n");
      // As the agent: the same batch again until it is acknowledged (a 200), with a short backoff.
      for (let attempt = 0; ; attempt++) {
        try {
          // The agent's request timeout: postgres.js 3.4.9 can lose a write on a socket the restart closed and leave the
          // query pending forever (porsager/postgres#1208, patched in patches/); the agent gives up on such a request and sends the batch again.
          const res = await Promise.race([
            ingestDecisions(db, agent, body),
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no answer in 10 s (the agent's timeout)")), 10_000).unref()),
          ]);
          expect(res.accepted + res.duplicates).toBe(BATCH);
          if (attempt > 0) retriedBatches++;
          for (const id of ids) acknowledged.add(id);
          if (upAt) ackedAfterRestart += BATCH;
          break;
        } catch (err) {
          failures++;
          if (attempt > 200) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    await restart;

    const rows = (await db.execute(sql`select id from decisions`)) as unknown as { id: string }[];
    const stored = new Set(rows.map((r) => r.id));
    const missing = [...acknowledged].filter((id) => !stored.has(id));
    console.log(
      `restart test: ${acknowledged.size} decisions acknowledged, ${rows.length} rows stored, ${missing.length} missing; ` +
        `${failures} failed attempts, ${retriedBatches} batches retried; server down ${((upAt - restartedAt) / 1000).toFixed(1)} s; ${ackedAfterRestart} acknowledged after the restart`,
    );
    expect(failures).toBeGreaterThan(0); // the restart really hit the run
    expect(ackedAfterRestart).toBeGreaterThan(0); // and ingestion resumed on new connections
    expect(missing).toEqual([]);
    expect(rows.length).toBe(acknowledged.size); // nothing stored twice (nor unacknowledged left behind: every batch was retried to success)
  }, 90_000);
});
