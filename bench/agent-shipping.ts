/**
 * Decision-log shipping, agent → control plane, end to end: the agent's WAL
 * (agent/wal.ts) and shipper (agent/shipper.ts) against the control plane's
 * real ingestion route (app/api/v1/agent/decisions, in process behind
 * node:http) on PostgreSQL. Needs DATABASE_URL (a local server); uses a fresh
 * database and drops it.
 *
 *   npx tsx --conditions=react-server bench/agent-shipping.ts [--stop-seconds 10] [--rate 2000] [--prefill 100000]
 *
 * 1. Throughput: a WAL pre-filled with 100,000 decisions (segments as the
 *    writer rotates them), shipped until the backlog is 0: decisions/s.
 * 2. Outage: decisions written at a steady rate while the control plane is
 *    stopped for --stop-seconds (default 10; the issue asks for 60), then
 *    restarted; rows lost (must be 0) once the backlog drained.
 *
 * (--conditions=react-server: the route handlers import "server-only", as in Next.js.)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { count, eq } from "drizzle-orm";
import { NextRequest } from "next/server";
import postgres from "postgres";
import { uuidv7 } from "uuidv7";
import { openDatabase } from "@/db/client";
import { agents, decisions, fleetServers, fleets, servers, tenants } from "@/db/schema";
import { formatAgentKey, newSecret } from "@/lib/agents/keys";
import { hashSecret } from "@/lib/auth/secrets";
import { Metrics } from "@/agent/metrics";
import { DecisionShipper } from "@/agent/shipper";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";

const { values: args } = parseArgs({
  options: { "stop-seconds": { type: "string", default: "10" }, rate: { type: "string", default: "2000" }, prefill: { type: "string", default: "100000" } },
});
const stopSeconds = Number(args["stop-seconds"]);
const rate = Number(args.rate);
const prefill = Number(args.prefill);

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const name = `mandate_bench_ship_${randomBytes(4).toString("hex")}`;
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
const h = await openDatabase({ url: u.toString() });
(globalThis as unknown as { __mandateDb?: Promise<unknown> }).__mandateDb = Promise.resolve(h);
const { POST } = await import("@/app/api/v1/agent/decisions/route");
const dirs: string[] = [];
const quiet = () => {};

/** The ingestion route over node:http on `port` (0: any). */
function serve(port = 0): Promise<{ server: Server; port: number; url: string }> {
  const server = createServer((req: IncomingMessage, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      if (req.method !== "POST" || req.url !== "/api/v1/agent/decisions") return void res.writeHead(404).end();
      const out = await POST(new NextRequest(`http://127.0.0.1${req.url}`, { method: "POST", headers, body: new Uint8Array(Buffer.concat(chunks)) }));
      res.writeHead(out.status, { "content-type": "application/json" }).end(Buffer.from(await out.arrayBuffer()));
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () => {
      const p = (server.address() as AddressInfo).port;
      resolve({ server, port: p, url: `http://127.0.0.1:${p}` });
    }),
  );
}
const stop = (server: Server) =>
  new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });

async function makeAgent(id: string): Promise<string> {
  const secret = newSecret();
  await h.db.insert(agents).values({ id, fleetId: "flt_b", name: id, keyHash: hashSecret(secret) });
  return formatAgentKey(id, secret);
}
const rows = async (agentId: string) => Number((await h.db.select({ n: count() }).from(decisions).where(eq(decisions.agentId, agentId)))[0]!.n);
const record = (): DecisionRecord => ({
  id: uuidv7(),
  time: new Date().toISOString(),
  agentId: null,
  bundleRevision: 3,
  tenantId: "ten_b",
  serverId: "srv_b",
  method: "tools/call",
  tool: "list_tickets",
  user: "alice",
  client: "claude",
  scopes: ["tickets:read"],
  outcome: "allow",
  determining: ["scope:srv_b:tickets:read"],
  reason: "allowed by scope tickets:read",
  latencyUs: 150,
});
const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

try {
  await h.db.insert(tenants).values({ id: "ten_b", name: "bench", slug: "bench" });
  await h.db.insert(servers).values({ id: "srv_b", tenantId: "ten_b", name: "bench", resourceUri: "https://mcp.bench.example", upstreamUrl: "http://127.0.0.1:9/mcp" });
  await h.db.insert(fleets).values({ id: "flt_b", name: "bench" });
  await h.db.insert(fleetServers).values({ fleetId: "flt_b", serverId: "srv_b" });
  let cp = await serve();

  // 1. Throughput from a pre-filled WAL.
  {
    const agentId = `agt_${randomBytes(16).toString("hex")}`;
    const key = await makeAgent(agentId);
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-bench-ship-"));
    dirs.push(dir);
    const fill = new DecisionWal(dir);
    await fill.open();
    // Appends resolve once fsynced (group commit); a batch of 1,000 at a time keeps the queue bounded.
    for (let i = 0; i < prefill; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, prefill - i) }, () => fill.append(record())));
    await fill.close();
    const wal = new DecisionWal(dir);
    await wal.open();
    const segs = wal.segments().length;
    const metrics = new Metrics();
    const shipper = new DecisionShipper({ wal, controlPlaneUrl: cp.url, agentKey: () => key, metrics, log: quiet });
    const t0 = performance.now();
    shipper.start();
    await until(() => wal.backlog().lines === 0, 600_000);
    const s = (performance.now() - t0) / 1000;
    await shipper.stop();
    await wal.close();
    const stored = await rows(agentId);
    console.log(
      `pre-filled WAL: ${prefill} decisions (${segs} sealed segments + active) shipped in ${s.toFixed(2)} s = ${Math.round(prefill / s)} decisions/s; rows stored ${stored} (lost ${prefill - stored})`,
    );
  }

  // 2. The control plane stopped for a while under load.
  {
    const agentId = `agt_${randomBytes(16).toString("hex")}`;
    const key = await makeAgent(agentId);
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-bench-ship-"));
    dirs.push(dir);
    const wal = new DecisionWal(dir);
    await wal.open();
    const metrics = new Metrics();
    const shipper = new DecisionShipper({ wal, controlPlaneUrl: cp.url, agentKey: () => key, metrics, log: quiet });
    shipper.start();
    let made = 0;
    let maxBacklog = 0;
    const warm = 3;
    const loadSeconds = warm + stopSeconds + 5;
    const started = Date.now();
    // A steady write rate, as the proxy appends: a tick every 10 ms.
    const load = setInterval(() => {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      while (made < due) {
        void wal.append(record());
        made++;
      }
      maxBacklog = Math.max(maxBacklog, wal.backlog().lines);
    }, 10);
    await new Promise((r) => setTimeout(r, warm * 1000));
    await stop(cp.server);
    const downAt = Date.now();
    await new Promise((r) => setTimeout(r, stopSeconds * 1000));
    const backlogAtRestart = wal.backlog().lines;
    cp = await serve(cp.port);
    const upAt = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, started + loadSeconds * 1000 - Date.now())));
    clearInterval(load);
    await wal.flush();
    const drained = await until(() => wal.backlog().lines === 0, 120_000);
    const drainS = (Date.now() - upAt) / 1000;
    await shipper.stop();
    await wal.close();
    const stored = await rows(agentId);
    console.log(
      `outage: control plane stopped ${((upAt - downAt) / 1000).toFixed(1)} s (--stop-seconds ${stopSeconds}; the issue asks for 60) under ${rate} decisions/s for ${loadSeconds} s: ` +
        `backlog ${backlogAtRestart} at the restart (max ${maxBacklog}), ${drained ? `drained ${drainS.toFixed(1)} s after the restart` : "NOT drained in 120 s"}; ` +
        `decisions made ${made}, rows stored ${stored}, rows lost ${made - stored}, duplicates resent ${metrics.decisionsDuplicates}`,
    );
  }
  await stop(cp.server);
} finally {
  await h.close();
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
