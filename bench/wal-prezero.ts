/**
 * The decision log's two segment formats side by side (agent/wal.ts):
 * "append" (`MANDATE_WAL_PREZERO=0`: O_APPEND | O_DSYNC, each write also
 * grows the file) and "prezero" (the segment pre-zeroed, each group
 * overwriting zeros in place with O_DSYNC). Closed loop: `c` callers each
 * append, await, repeat, as c concurrent requests through the agent would;
 * at c=1 every write carries one line, at c=32 group commit shares writes.
 * Runs alternate (append, prezero, prezero, append, …) in one process on
 * the same disk so drift cancels. Segments rotate as in production (5,000
 * lines / 4 MiB) and, as the shipper does, the active segment is sealed
 * every `--seal-ms` (default 1000; 0: never) and each sealed segment then
 * deleted (as once acknowledged), so seals, and for prezero the background
 * zero-filling of the next segment and the cutting of the sealed one's
 * zeros, are inside the figures.
 *
 *   npx tsx bench/wal-prezero.ts [--seconds 3] [--rounds 2] [--concurrency 1,32] [--dir /var/tmp] [--seal-ms 1000]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { uuidv7 } from "uuidv7";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "1,32" },
    dir: { type: "string", default: "/var/tmp" },
    "seal-ms": { type: "string", default: "1000" },
  },
});
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const levels = args.concurrency.split(",").map(Number);
const sealMs = Number(args["seal-ms"]);

// A typical tools/call record (masked arguments and context included): ~600 bytes of JSON, as bench/wal.ts.
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

type Mode = "append" | "prezero";
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** One run: a fresh data dir (its first segment made at open, outside the timing), `c` callers for `seconds`. */
async function run(mode: Mode, c: number): Promise<number[]> {
  const dir = await mkdtemp(path.join(args.dir, "mandate-bench-wal-prezero-"));
  const wal = new DecisionWal(dir, { prezero: mode === "prezero" });
  await wal.open();
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  let shipping = Promise.resolve();
  const shipper = sealMs
    ? setInterval(() => {
        shipping = shipping.then(async () => {
          await wal.seal();
          for (const seg of wal.segments()) await wal.acknowledge(seg);
        });
      }, sealMs)
    : null;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await wal.append(record());
        lat.push((performance.now() - t0) * 1000);
      }
    }),
  );
  if (shipper) clearInterval(shipper);
  await shipping;
  await wal.close();
  await rm(dir, { recursive: true, force: true });
  return lat;
}

const us = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)} ms` : `${Math.round(n)} µs`);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
console.log(`decision WAL segment format, sealed every ${sealMs || "-"} ms, ${seconds} s per run, ${rounds} x (append, prezero, prezero, append) per level, dir ${args.dir}, load average ${load()}`);
console.log("latency = time until append() resolves (the line durable), what each answered call waits for");
for (const c of levels) {
  const lat: Record<Mode, number[]> = { append: [], prezero: [] };
  const runs: Record<Mode, number[]> = { append: [], prezero: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of ["append", "prezero", "prezero", "append"] as const) {
      const l = await run(mode, c);
      for (const x of l) lat[mode].push(x);
      runs[mode].push(l.length / seconds);
      l.sort((a, b) => a - b);
      console.log(`  c=${c} ${mode.padEnd(7)} run: ${Math.round(l.length / seconds)} appends/s, p50 ${us(pct(l, 50))}, p90 ${us(pct(l, 90))}, p99 ${us(pct(l, 99))}`);
    }
  }
  const stat = (m: Mode) => {
    const s = lat[m].sort((a, b) => a - b);
    return { rate: runs[m].reduce((a, b) => a + b, 0) / runs[m].length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), mean: s.reduce((a, b) => a + b, 0) / s.length };
  };
  const a = stat("append");
  const p = stat("prezero");
  for (const [m, s] of [
    ["append", a],
    ["prezero", p],
  ] as const)
    console.log(
      `c=${String(c).padEnd(3)} ${m.padEnd(7)} | ${String(Math.round(s.rate)).padStart(7)} appends/s | p50 ${us(s.p50).padStart(8)} | p90 ${us(s.p90).padStart(8)} | p99 ${us(s.p99).padStart(8)} | mean ${us(s.mean).padStart(8)}`,
    );
  console.log(
    `c=${String(c).padEnd(3)} prezero / append: p50 ×${(p.p50 / a.p50).toFixed(2)}, p90 ×${(p.p90 / a.p90).toFixed(2)}, p99 ×${(p.p99 / a.p99).toFixed(2)}, mean ×${(p.mean / a.mean).toFixed(2)}, appends/s ×${(p.rate / a.rate).toFixed(2)}  (load ${load()})`,
  );
}
