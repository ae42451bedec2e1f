/**
 * The cost of "no decision record, no answer" (issue 10.10): how long a
 * caller waits for `DecisionWal.append()` to resolve (the record fsynced),
 * and how many decisions per second the WAL takes, with group commit (every
 * record waiting shares the next fsync) side by side with one fsync per
 * record (maxBatch: 1). Closed loop: `c` callers each append, await, repeat,
 * as c concurrent requests through the agent would. On the data dir's disk.
 *
 *   npx tsx bench/wal.ts [--seconds 3] [--concurrency 1,8,32,128] [--dir /path/on/the/disk]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { uuidv7 } from "uuidv7";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";

const { values: args } = parseArgs({
  options: { seconds: { type: "string", default: "3" }, concurrency: { type: "string", default: "1,8,32,128" }, dir: { type: "string" } },
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

async function run(maxBatch: number | undefined, c: number): Promise<{ rate: number; p50: number; p99: number }> {
  const dir = await mkdtemp(path.join(args.dir ?? tmpdir(), "mandate-bench-wal-"));
  // Segments rotate as in production (5,000 lines / 4 MiB); they are not shipped here.
  const wal = new DecisionWal(dir, maxBatch ? { maxBatch } : {});
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
console.log(`decision WAL, ${seconds} s per run, dir ${args.dir ?? tmpdir()}; latency = time until append() resolves (the record fsynced), added to each answered call`);
console.log("concurrency | group commit: appends/s   p50      p99     | one fsync per record: appends/s   p50      p99");
for (const c of levels) {
  const g = await run(undefined, c);
  const one = await run(1, c);
  console.log(
    `${String(c).padStart(11)} | ${String(Math.round(g.rate)).padStart(23)} ${us(g.p50).padStart(8)} ${us(g.p99).padStart(8)} | ${String(Math.round(one.rate)).padStart(31)} ${us(one.p50).padStart(8)} ${us(one.p99).padStart(8)}`,
  );
}
