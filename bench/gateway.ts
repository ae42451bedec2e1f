/**
 * The agent as a gateway: tools/call latency (p50/p99) and throughput through
 * the agent vs. calling the sandbox upstream directly, at 1 and 32 concurrent
 * clients (one MCP session per client, official SDK client); and the time
 * from a bundle publish to the first call the agent decides with the new
 * revision (p50 over PUBLISHES publishes).
 *
 * Real peers: a fresh PostgreSQL database beside DATABASE_URL (local only,
 * dropped at the end), the control plane's agent API route handlers over
 * node:http in this process, the agent as a child process (agent/main.ts),
 * the sandbox upstream as a child process, ES256 tokens checked by the real
 * TokenValidator (JWKS over HTTP).
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/test npx tsx bench/gateway.ts
 *   N=4000 ROUNDS=2 PUBLISHES=20 RSS_CALLS=100000 AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" …
 *   BEFORE=0 leaves out the "before" path: a second agent run as before issue 12's second round
 *   (MANDATE_WAL_SYNC=fsync: write then fsync; MANDATE_CEDAR_JS=0: cedar-wasm only), same bundle, same disk.
 *   BEFORE_ENV='{"MANDATE_X":"0"}' gives the "before" agent that environment instead (an env switch that keeps an old path);
 *   AGENT_ENV='{…}' adds to the "agent" agent's environment.
 *   (N: calls per row, in ROUNDS×2 alternating slices split across the clients; the WAL lives in
 *   the data dir under BENCH_DATA_DIR, default the OS temp dir: point it at tmpfs or disk to see what fsync costs)
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { register } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { connect, quantile, spawnReady, startBenchAgent, stop } from "./harness";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

// Next.js' "server-only" marker throws outside React Server Components: resolve it to an empty module for this script alone.
register(`data:text/javascript,${encodeURIComponent(`export async function resolve(s, c, n) { return s === "server-only" ? { url: "data:text/javascript,", shortCircuit: true } : n(s, c); }`)}`);

// The SDK client transport adds an abort listener to its session's signal per request (thousands per session here):
// Node's MaxListenersExceededWarning for that is noise in this script; other warnings still print.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "MaxListenersExceededWarning") console.warn(w);
});

const N = Number(process.env.N ?? 4000);
const PUBLISHES = Number(process.env.PUBLISHES ?? 0);
const CONCURRENCY = (process.env.CONCURRENCY ?? "1,32").split(",").map(Number);
/** Rounds of A B C C B A slices per concurrency. */
const ROUNDS = Number(process.env.ROUNDS ?? 2);
if (!process.env.DATABASE_URL) throw new Error("set DATABASE_URL to a local PostgreSQL server");
// A throwaway control plane whose peers (sandbox upstream, issuer) are all on loopback.
process.env.MANDATE_EGRESS_ALLOW ??= "loopback";

const root = fileURLToPath(new URL("..", import.meta.url));
const { eq } = await import("drizzle-orm");
const { tools } = await import("@/db/schema");
const { stopBundleListener } = await import("@/lib/agents/bundle-waiter");
const { publishBundle } = await import("@/lib/bundles/service");
const { activeSigningKey, publicKeys } = await import("@/lib/bundles/signing");
const { approveTool, importCatalog } = await import("@/lib/catalog/service");
const { createEnrollmentToken, createFleet } = await import("@/lib/fleets/service");
const { createPolicy, updatePolicy } = await import("@/lib/policy/service");
const { putScopeMapping } = await import("@/lib/scopes/service");
const { createServerInput } = await import("@/lib/servers/schemas");
const { createServer } = await import("@/lib/servers/service");
const { createTestDb, makeTenant, makeUser, uniq } = await import("@/test/db");
const { freePort, startSandbox } = await import("@/test/sandbox");
const { startIssuer } = await import("@/test/agent-proc-harness");
// The whole agent API, decision ingestion included: the agent ships its decision log while it serves.
const { startShipControlPlane } = await import("@/test/agent-ship-harness");

/** Resident set size of a process, in MiB (Linux /proc). */
async function agentRss(pid: number): Promise<number> {
  const status = await (await import("node:fs/promises")).readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN) / 1024;
}

const ms = (v: number) => v.toFixed(2).padStart(8);

/**
 * CPU seconds a process has run so far, every thread (the libuv pool's log writes too): the sum of its threads'
 * /proc/<pid>/task/<tid>/schedstat run times (nanoseconds, exact; utime + stime are sampled per 10 ms tick and
 * misattribute short, frequent runs). A thread that ended meanwhile drops out, so it is read before and after a
 * slice of a long-lived process only. NaN where there is no /proc.
 */
async function procCpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const { readdir, readFile } = await import("node:fs/promises");
  try {
    let ns = 0;
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, "utf8").catch(() => "0");
      ns += Number(text.split(" ")[0]);
    }
    return ns / 1e9;
  } catch {
    return NaN;
  }
}

interface Row {
  target: string;
  clients: number;
  calls: number;
  p50: number;
  p99: number;
  rps: number;
  /** The load generator's own CPU (user + system) per wall second, over this path's slices. */
  genCpu: number;
  /** CPU milliseconds per call of the path's proxy process (bare proxy or agent; NaN for direct). */
  proxyCpuMs: number;
}

interface Slice {
  lat: number[];
  seconds: number;
  cpuSeconds: number;
  /** CPU seconds of the proxy process (`pid`) over the measured calls. */
  proxyCpuSeconds: number;
}

/** One slice: `total` calls split across `clients` sessions (closed loop), after a short warm-up. */
async function slice(url: string, bearer: string | null, clients: number, total: number, reuse?: Client[], pid?: number): Promise<Slice> {
  const sessions = reuse ?? (await Promise.all(Array.from({ length: clients }, () => connect(url, bearer))));
  const per = Math.max(1, Math.floor(total / clients));
  // Warm-up: JIT, keep-alive sockets, JWKS cache.
  await Promise.all(
    sessions.map(async (c) => {
      for (let i = 0; i < 20; i++) await c.callTool({ name: "get_ticket", arguments: { id: "T-100" } });
    }),
  );
  const lat: number[] = [];
  const proxy0 = await procCpuSeconds(pid);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    sessions.map(async (c) => {
      for (let i = 0; i < per; i++) {
        const s = performance.now();
        const r = await c.callTool({ name: "get_ticket", arguments: { id: "T-100" } });
        lat.push(performance.now() - s);
        if (r.isError) throw new Error(`call failed: ${JSON.stringify(r.content)}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const proxyCpuSeconds = (await procCpuSeconds(pid)) - proxy0;
  if (!reuse) await Promise.all(sessions.map((c) => c.close()));
  return { lat, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, proxyCpuSeconds };
}

/**
 * Every path at one concurrency, in alternating slices (A B C D D C B A, then
 * A B D C C D B A, by default) so drift of a shared machine cancels; each
 * path's row pools its slices.
 */
async function alternate(paths: { target: string; url: string; bearer: string | null; pid?: number }[], clients: number, total: number): Promise<Row[]> {
  const acc = new Map(paths.map((p) => [p.target, { lat: [] as number[], seconds: 0, cpuSeconds: 0, proxyCpuSeconds: 0 }]));
  // The last two paths (the agent and the "before" agent) trade places every other round: in A B C D D C B A, D
  // always follows C's slot, whose decisions its shipper is still sending (CPU of this process and PostgreSQL), and C
  // never follows D's; A/A runs read ~10% apart at c=32 from that alone. Swapped, each sees the other's wake equally.
  const swapped = paths.length >= 4 ? [...paths.slice(0, -2), paths.at(-1)!, paths.at(-2)!] : paths;
  const per = Math.max(clients, Math.floor(total / (ROUNDS * 2)));
  for (let r = 0; r < ROUNDS; r++)
    for (const p of ((base) => [...base, ...[...base].reverse()])(r % 2 ? swapped : paths)) {
      const s = await slice(p.url, p.bearer, clients, per, undefined, p.pid);
      const a = acc.get(p.target)!;
      a.lat.push(...s.lat);
      a.seconds += s.seconds;
      a.cpuSeconds += s.cpuSeconds;
      a.proxyCpuSeconds += s.proxyCpuSeconds;
    }
  return paths.map((p) => {
    const a = acc.get(p.target)!;
    a.lat.sort((x, y) => x - y);
    return {
      target: p.target,
      clients,
      calls: a.lat.length,
      p50: quantile(a.lat, 0.5),
      p99: quantile(a.lat, 0.99),
      rps: a.lat.length / a.seconds,
      genCpu: a.cpuSeconds / a.seconds,
      proxyCpuMs: (a.proxyCpuSeconds * 1000) / a.lat.length,
    };
  });
}

const kek = { id: "kek-bench", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const t = await createTestDb();
g.__mandateDb = Promise.resolve(t.handle);
let agentProc: ChildProcess | null = null;
let beforeProc: ChildProcess | null = null;
const BEFORE = process.env.BEFORE !== "0";
let bareProc: ChildProcess | null = null;
const dataDir = await mkdtemp(path.join(process.env.BENCH_DATA_DIR ?? tmpdir(), "mandate-bench-gw-"));
const beforeDir = await mkdtemp(path.join(process.env.BENCH_DATA_DIR ?? tmpdir(), "mandate-bench-gw-before-"));
const [sandbox, cp, issuer, agentPort, barePort, beforePort] = await Promise.all([startSandbox(), startShipControlPlane(), startIssuer(), freePort(), freePort(), freePort()]);
try {
  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Bench "),
      resourceUri,
      upstreamUrl: sandbox.url,
      scopes: ["tickets:read", "tickets:write"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const serverId = server!.id;
  await importCatalog(owner.ctx, serverId);
  for (const tool of await t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  // Toggled on and off by the publish-latency part: forbids list_tickets.
  const toggle = (await createPolicy(owner.ctx, {
    tenantId,
    serverId,
    name: "freeze listing",
    description: "",
    kind: "rule",
    rule: { effect: "forbid", actions: ["call_tool"], tools: ["list_tickets"], principals: { users: [], groups: [] }, clients: [], conditions: [] },
    enabled: false,
  }))!;
  const fleet = (await createFleet(owner.ctx, { name: uniq("Bench edge "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "bench" }, kek);

  const envOf = (v: string | undefined): Record<string, string> => (v ? (JSON.parse(v) as Record<string, string>) : {});
  agentProc = await startBenchAgent({
    root,
    controlPlaneUrl: cp.url,
    enrollmentToken: enrollment.token,
    keys,
    port: agentPort,
    dataDir,
    name: "bench-agent",
    // The same routing as the "before" agent (which needs the public origin: it listens on another port than the resource
    // URI's); without it the two agents took different paths through the request's Host check, a slot bias.
    env: { MANDATE_PUBLIC_ORIGIN: new URL(resourceUri).origin, ...envOf(process.env.AGENT_ENV) },
  });
  if (BEFORE) {
    const second = await createEnrollmentToken(owner.ctx, fleet.id);
    beforeProc = await startBenchAgent({
      root,
      controlPlaneUrl: cp.url,
      enrollmentToken: second.token,
      keys,
      port: beforePort,
      dataDir: beforeDir,
      name: "bench-agent-before",
      env: { ...(process.env.BEFORE_ENV ? envOf(process.env.BEFORE_ENV) : { MANDATE_WAL_SYNC: "fsync", MANDATE_CEDAR_JS: "0" }), MANDATE_PUBLIC_ORIGIN: new URL(resourceUri).origin },
    });
  }
  const bearer = await issuer.sign({ sub: "alice", tenant: tenantId, client_id: "bench", scope: "tickets:read tickets:write" }, resourceUri, "2h");

  // The floor: a bare reverse proxy (undici Pool, no auth, no decision) as a child process like the agent.
  bareProc = await spawnReady(root, ["bench/bare-proxy.mjs", String(barePort), sandbox.url], "the bare proxy");
  const paths = [
    { target: "direct", url: sandbox.url, bearer: null },
    { target: "bare", url: `http://127.0.0.1:${barePort}/mcp`, bearer: bearer, pid: bareProc.pid },
    { target: "agent", url: resourceUri, bearer, pid: agentProc.pid },
    ...(BEFORE ? [{ target: "before", url: `http://127.0.0.1:${beforePort}/mcp`, bearer, pid: beforeProc!.pid }] : []),
  ];
  const rows: Row[] = [];
  for (const c of CONCURRENCY) rows.push(...(await alternate(paths, c, N)));
  const os = await import("node:os");
  console.log(
    `\ntools/call get_ticket, ~${N} calls per row in ${ROUNDS * 2} alternating slices (node ${process.version}, ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}; sandbox, bare proxy and agent are child processes)\n`,
  );
  console.log("target   clients   calls   p50 ms   p99 ms      calls/s   load-gen CPU   proxy CPU ms/call");
  for (const r of rows)
    console.log(
      `${r.target.padEnd(8)} ${String(r.clients).padStart(7)} ${String(r.calls).padStart(7)} ${ms(r.p50)} ${ms(r.p99)} ${r.rps.toFixed(0).padStart(12)} ${(r.genCpu * 100).toFixed(0).padStart(10)} %   ${Number.isNaN(r.proxyCpuMs) ? "               -" : r.proxyCpuMs.toFixed(3).padStart(16)}`,
    );
  console.log("\noverhead vs direct (added p50 / p99, throughput ratio)");
  for (const c of CONCURRENCY) {
    const d = rows.find((r) => r.target === "direct" && r.clients === c)!;
    for (const target of ["bare", "agent", ...(BEFORE ? ["before"] : [])]) {
      const a = rows.find((r) => r.target === target && r.clients === c)!;
      console.log(`  ${target.padEnd(6)} ${String(c).padStart(2)} clients: p50 +${(a.p50 - d.p50).toFixed(2)} ms, p99 +${(a.p99 - d.p99).toFixed(2)} ms, throughput ×${(a.rps / d.rps).toFixed(2)}`);
    }
  }
  if (process.env.RSS_CALLS) {
    // Agent RSS must not grow with calls: sampled at start and after every tenth of RSS_CALLS (10,000, 20,000 … 100,000
    // for RSS_CALLS=100000), at c=32 over the
    // same 32 sessions (each session's forwarded-request ids are kept up to a bound: new sessions fill that bound, not the calls).
    const total = Number(process.env.RSS_CALLS);
    const marks = Array.from({ length: 10 }, (_, i) => Math.round(((i + 1) * total) / 10));
    const sessions = await Promise.all(Array.from({ length: 32 }, () => connect(resourceUri, bearer)));
    const samples: string[] = [`start ${(await agentRss(agentProc.pid!)).toFixed(1)} MiB`];
    let done = 0;
    for (const mark of marks) {
      const s = await slice(resourceUri, bearer, 32, mark - done, sessions);
      done += s.lat.length + sessions.length * 20; // each slice's warm-up calls count too
      samples.push(`after ${done} calls ${(await agentRss(agentProc.pid!)).toFixed(1)} MiB`);
    }
    await Promise.all(sessions.map((c) => c.close()));
    const os = await import("node:os");
    console.log(`\nagent RSS (c=32, 32 sessions, load average ${os.loadavg()[0]!.toFixed(2)}): ${samples.join("; ")}`);
  }

  // Publish → first call decided with the new revision (agent long-polling with wait=30).
  const client = await connect(resourceUri, bearer);
  const allowed = async () => {
    try {
      await client.callTool({ name: "list_tickets", arguments: {} });
      return true;
    } catch (err) {
      if (err instanceof McpError && err.code === -32003) return false;
      throw err;
    }
  };
  if (PUBLISHES && !(await allowed())) throw new Error("list_tickets should be allowed before the first toggle");
  const sincePublished: number[] = [];
  const sinceCommitted: number[] = [];
  let enabled = false;
  for (let i = 0; i < PUBLISHES; i++) {
    enabled = !enabled;
    await updatePolicy(owner.ctx, toggle.id, { enabled });
    await new Promise((r) => setTimeout(r, 200)); // let the agent's long poll settle
    const t0 = performance.now();
    await publishBundle(owner.ctx, fleet.id, { note: `toggle ${i}` }, kek);
    const t1 = performance.now();
    const want = !enabled;
    const deadline = Date.now() + 60_000;
    while ((await allowed()) !== want) if (Date.now() > deadline) throw new Error(`publish ${i} not in force after 60 s`);
    const t2 = performance.now();
    sincePublished.push(t2 - t0);
    sinceCommitted.push(t2 - t1);
  }
  await client.close();
  const metrics = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
  console.log(
    `\nagent's own decision time (mandate_decision_seconds): mean ${((metric("mandate_decision_seconds_sum") / metric("mandate_decision_seconds_count")) * 1000).toFixed(3)} ms over ${metric("mandate_decision_seconds_count")} decisions; decisions shipped to the control plane: ${metric("mandate_decisions_shipped_total")}; decision log writes: ${metric('mandate_log_writes_total{mode="lone"}')} lone, ${metric('mandate_log_writes_total{mode="group"}')} group`,
  );
  sincePublished.sort((a, b) => a - b);
  sinceCommitted.sort((a, b) => a - b);
  if (PUBLISHES) console.log(`\npublish → first call decided with the new revision, ${PUBLISHES} publishes (long poll, wait=30 s)`);
  if (PUBLISHES) console.log(`  from the publish call:    p50 ${ms(quantile(sincePublished, 0.5))} ms   max ${ms(sincePublished.at(-1)!)} ms`);
  if (PUBLISHES) console.log(`  from its commit (return): p50 ${ms(quantile(sinceCommitted, 0.5))} ms   max ${ms(sinceCommitted.at(-1)!)} ms`);
} finally {
  await Promise.all([stop(agentProc), stop(bareProc), stop(beforeProc)]);
  await Promise.all([sandbox.stop(), cp.close(), issuer.close()]);
  delete g.__mandateDb;
  await stopBundleListener(t.handle);
  await t.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(beforeDir, { recursive: true, force: true });
}
