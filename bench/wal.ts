/**
 * The cost of "no decision record, no answer" (issue 10.10): how long a
 * caller waits for `DecisionWal.append()` to resolve (the record fsynced),
 * and how many decisions per second the WAL takes, with group commit (every
 * record waiting shares the next fsync) side by side with one fsync per
 * record (maxBatch: 1). Closed loop: `c` callers each append, await, repeat,
 * as c concurrent requests through the agent would. On the data dir's disk.
 * Each row runs twice, alternating: the active segment opened O_DSYNC (one
 * write(2) per group, the default) and a plain write then fsync (the way
 * before), so the ratio compares the two under the same load.
 *
 *   npx tsx bench/wal.ts [--seconds 2] [--concurrency 1,8,32,128] [--dir /path/on/the/disk]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { uuidv7 } from "uuidv7";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";

const { values: args } = parseArgs({
  options: { seconds: { type: "string", default: "2" }, concurrency: { type: "string", default: "1,32" }, dir: { type: "string" } },
});
const seconds = Number(args.seconds);
const levels = args.concurrency.split(",").map(Number);

// A typical tools/call record (masked arguments and context included): ~600 bytes of JSON.
const record = (): DecisionRecord => ({
  id: uuidv7(),
  time: new Date().toISOString(),
  agentId: "agt_0190f0c4bench",
  bundleRevision: 12,
  tenantId: "ten_0190f0c4bench",
  serverId: "srv_0190f0c4bench",
  method: "tools/call",
  tool: "list_tickets",
  user: "https://idp.example.com|alice@example.com",
  client: "claude-desktop",
  scopes: ["tickets:read", "tickets:write"],
  outcome: "allow",
  determining: ["scope:srv_0190f0c4bench:tickets:read"],
  reason: "permitted by policy",
  latencyUs: 95,
  args: { project: "OPS", status: "open", query: "login fails after upgrade", limit: 50 },
  context: { groups: ["eng", "oncall"], actors: [], token: { iss: "https://idp.example.com", iat: 1_790_000_000, exp: 1_790_003_600 }, masked: [] },
});

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function run(maxBatch: number | undefined, c: number, sync: "dsync" | "fsync"): Promise<{ rate: number; p50: number; p99: number }> {
  const dir = await mkdtemp(path.join(args.dir ?? tmpdir(), "mandate-bench-wal-"));
  // Segments rotate as in production (5,000 lines / 4 MiB); they are not shipped here.
  const wal = new DecisionWal(dir, maxBatch ? { maxBatch, sync } : { sync });
  await wal.open();
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await wal.append(record());
        lat.push((performance.now() - t0) * 1000);
      }
    }),
  );
  const elapsed = seconds + (performance.now() - end) / 1000;
  await wal.close();
  await rm(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return { rate: lat.length / elapsed, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const us = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)} ms` : `${Math.round(n)} µs`);
type Stat = { rate: number; p50: number; p99: number };
const pool = (a: Stat, b: Stat): Stat => ({ rate: (a.rate + b.rate) / 2, p50: (a.p50 + b.p50) / 2, p99: Math.max(a.p99, b.p99) });
console.log(
  `decision WAL, ${seconds} s per run, dir ${args.dir ?? tmpdir()}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
console.log("latency = time until append() resolves (the record durable), added to each answered call; dsync = O_DSYNC write (default), fsync = write + fsync (before)");
console.log("concurrency sync  | group commit: appends/s   p50      p99     | one durable write per record: appends/s   p50      p99");
for (const c of levels) {
  // Alternating (dsync, fsync, fsync, dsync) so drift of a shared disk cancels; p50 averaged, p99 the worse.
  const r: Record<"dsync" | "fsync", { g: Stat[]; one: Stat[] }> = { dsync: { g: [], one: [] }, fsync: { g: [], one: [] } };
  for (const sync of ["dsync", "fsync", "fsync", "dsync"] as const) {
    r[sync].g.push(await run(undefined, c, sync));
    r[sync].one.push(await run(1, c, sync));
  }
  for (const sync of ["dsync", "fsync"] as const) {
    const g = pool(r[sync].g[0]!, r[sync].g[1]!);
    const one = pool(r[sync].one[0]!, r[sync].one[1]!);
    console.log(
      `${String(c).padStart(11)} ${sync} | ${String(Math.round(g.rate)).padStart(23)} ${us(g.p50).padStart(8)} ${us(g.p99).padStart(8)} | ${String(Math.round(one.rate)).padStart(39)} ${us(one.p50).padStart(8)} ${us(one.p99).padStart(8)}`,
    );
  }
  const ratio = (x: Stat[], y: Stat[]) => (pool(x[0]!, x[1]!).p50 / pool(y[0]!, y[1]!).p50).toFixed(2);
  console.log(`${" ".repeat(11)} p50 dsync / fsync: group commit ×${ratio(r.dsync.g, r.fsync.g)}, one per record ×${ratio(r.dsync.one, r.fsync.one)}`);
}
