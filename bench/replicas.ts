/**
 * Two control-plane replicas on one PostgreSQL (issue 15): both `next start`
 * processes (the production build) serve the dashboard, the admin API and
 * agents at once. AGENTS simulated agents (default 100) hold
 * `GET /api/v1/agent/bundle?wait=30` long polls, half on each replica; the
 * owner publishes PUBLISHES times (default 50), alternating the replica it
 * publishes on. "Enforced" is when an agent has the new revision (its long
 * poll answered 200 with the new ETag); the figure is publish response →
 * every agent's answer, split by "same replica as the publish" and "the other
 * replica" (woken by PostgreSQL LISTEN/NOTIFY). Also checks that an API token
 * made on one replica works on the other and that both serve the dashboard.
 *
 *   flock /tmp/mandate-heavy.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/replicas.ts
 *   AGENTS=100 PUBLISHES=50 …   (needs `npx next build` first)
 */
import { loadavg } from "node:os";
// @ts-expect-error -- scripts/harness.mjs is plain JavaScript without declarations
import { appEnv, freePort, freshDatabase, ownerApiToken, startApp, waitFor } from "../scripts/harness.mjs";

const AGENTS = Number(process.env.AGENTS ?? 100);
const PUBLISHES = Number(process.env.PUBLISHES ?? 50);
if (!process.env.DATABASE_URL) throw new Error("set DATABASE_URL: two processes need PostgreSQL (an embedded PGlite belongs to one process)");

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const db = await freshDatabase("replicas");
const [portA, portB] = [await freePort(), await freePort()];
// One deployment, two processes: the same secrets and keys, each its own address.
const shared = appEnv(portA, db.env);
const envA = shared;
const envB = { ...shared, NEXTAUTH_URL: `http://127.0.0.1:${portB}` };
const bases = [envA.NEXTAUTH_URL, envB.NEXTAUTH_URL];
const apps: { kill(signal: string): void }[] = [];

try {
  // A first (it migrates and creates the owner), then B on the migrated database.
  apps.push(startApp(portA, envA, ["ignore", "ignore", "inherit"]));
  await waitFor(`${bases[0]}/login`);
  apps.push(startApp(portB, envB, ["ignore", "ignore", "inherit"]));
  await waitFor(`${bases[1]}/login`);
  const token = await ownerApiToken(bases[0]!, envA.MANDATE_OWNER_EMAIL, envA.MANDATE_OWNER_PASSWORD);
  const call = async (base: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    if (r.status >= 400) throw new Error(`${method} ${base}${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  // The admin API on either replica with the token made on A.
  const tenant = await call(bases[1]!, "POST", "/api/v1/admin/tenants", { name: "Bench" });
  const server = await call(bases[0]!, "POST", "/api/v1/admin/servers", {
    tenantId: tenant.id,
    name: "bench",
    resourceUri: "https://mcp.bench.example/t",
    upstreamUrl: "http://127.0.0.1:9/mcp",
    scopes: ["read"],
  });
  await call(bases[1]!, "POST", `/api/v1/admin/servers/${server.id}/tools`, { name: "list_things", inputSchema: { type: "object" } });
  await call(bases[0]!, "PUT", `/api/v1/admin/servers/${server.id}/scopes`, { baseVersion: 0, mapping: { read: ["list_things"] } });
  const fleet = await call(bases[1]!, "POST", "/api/v1/admin/fleets", { name: "bench", serverIds: [server.id] });
  const dashboards = await Promise.all(bases.map(async (b) => (await fetch(`${b}/login`)).status));
  console.log(`two replicas on one PostgreSQL: A :${portA}, B :${portB}; dashboard /login ${dashboards.join(" / ")}; admin API token made on A used on both`);

  // Agents: enrolled on alternate replicas, each long-polling its own replica.
  const agents: { key: string; base: string; replica: 0 | 1; etag: string | null }[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const replica = (i % 2) as 0 | 1;
    const { token: enrollment } = await call(bases[replica]!, "POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, {});
    const r = await fetch(`${bases[replica]}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment, name: `agent-${i}`, version: "bench" }),
    });
    agents.push({ key: ((await r.json()) as { agentKey: string }).agentKey, base: bases[replica]!, replica, etag: null });
  }
  await call(bases[0]!, "POST", `/api/v1/admin/fleets/${fleet.id}/bundles`, { note: "first" });
  for (const a of agents) {
    const r = await fetch(`${a.base}/api/v1/agent/bundle`, { headers: { authorization: `Bearer ${a.key}` } });
    a.etag = r.headers.get("etag");
    await r.arrayBuffer();
  }

  const same: number[] = [];
  const other: number[] = [];
  const all: number[] = [];
  const lastAgent: number[] = [];
  for (let p = 0; p < PUBLISHES; p++) {
    const on = p % 2; // the replica that publishes
    const polls = agents.map(async (a) => {
      const r = await fetch(`${a.base}/api/v1/agent/bundle?wait=30`, { headers: { authorization: `Bearer ${a.key}`, "if-none-match": a.etag ?? "" } });
      const at = performance.now();
      if (r.status !== 200) throw new Error(`long poll on replica ${a.replica ? "B" : "A"} answered ${r.status}`);
      const etag = r.headers.get("etag");
      if (etag === a.etag) throw new Error("answered without a new revision");
      a.etag = etag;
      await r.arrayBuffer();
      return { at, replica: a.replica };
    });
    await new Promise((r) => setTimeout(r, 200)); // every poll reaches its replica and subscribes
    await call(bases[on]!, "POST", `/api/v1/admin/fleets/${fleet.id}/bundles`, { note: `bench ${p}` });
    const answered = performance.now();
    let worst = 0;
    for (const r of await Promise.all(polls)) {
      const ms = Math.max(0, r.at - answered);
      all.push(ms);
      (r.replica === on ? same : other).push(ms);
      worst = Math.max(worst, ms);
    }
    lastAgent.push(worst);
  }
  const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms (n=${xs.length})`;
  console.log(`${AGENTS} agents (${AGENTS / 2} per replica) × ${PUBLISHES} publishes, alternating the publishing replica; load ${loadavg()[0]!.toFixed(1)}:`);
  console.log(`  publish response → agent has the new revision, every agent:        ${fmt(all)}`);
  console.log(`    agents on the replica that published:                           ${fmt(same)}`);
  console.log(`    agents on the other replica (LISTEN/NOTIFY through PostgreSQL):  ${fmt(other)}`);
  console.log(`  publish response → the LAST of the ${AGENTS} agents has it (fleet enforced): ${fmt(lastAgent)}`);
} finally {
  for (const a of apps) a.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  await db.cleanup();
}
