/**
 * Credential broker throughput against PostgreSQL: resolutions per second
 *  - through the service (resolveCredential: fleet + tenant checks, entry and
 *    version lookup, envelope decryption, trail row), uncached;
 *  - through the real route handler (app/api/v1/agent/credentials: agent-key
 *    auth, touch, zod, the service), called in process, 1 and 8 concurrent;
 *  - through the agent's CredentialBroker (agent/credentials.ts) with its
 *    cache: hits, and misses after every version change (its fetch goes to the
 *    route handler in process).
 * Needs DATABASE_URL (a local server); uses a fresh database and drops it.
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/postgres npx tsx --conditions=react-server bench/broker.ts
 *   N=3000 …   (resolutions per scenario)
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { NextRequest } from "next/server";
import postgres from "postgres";
import { openDatabase } from "@/db/client";
import { sql } from "drizzle-orm";
import { agents, fleetServers, fleets, servers, tenants, users, vaultVersions } from "@/db/schema";
import { formatAgentKey, newSecret } from "@/lib/agents/keys";
import { actorForUser } from "@/lib/auth/actors";
import { hashSecret } from "@/lib/auth/secrets";
import type { BundleContent } from "@/lib/enforcement/bundle";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const N = Number(process.env.N ?? 3000);
const name = `mandate_bench_broker_${randomBytes(4).toString("hex")}`;
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
// The route reads the KEK from the environment, like the control plane.
process.env.DATABASE_URL = u.toString();
process.env.MANDATE_KEK = randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID = "kek-bench";
process.env.NEXTAUTH_SECRET = randomBytes(32).toString("base64url");
const h = await openDatabase({ url: u.toString() });
(globalThis as unknown as { __mandateDb?: Promise<unknown> }).__mandateDb = Promise.resolve(h);
const { getEnv } = await import("@/lib/env");
const { createEntry, resolveCredential, rotateEntry } = await import("@/lib/vault/service");
const { openSecret } = await import("@/lib/vault/crypto");
const { POST } = await import("@/app/api/v1/agent/credentials/route");
const { CredentialBroker } = await import("@/agent/credentials");
const { Metrics } = await import("@/agent/metrics");

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
function report(label: string, n: number, ms: number, lat?: number[]) {
  const extra = lat ? `  p50 ${pct(lat, 0.5).toFixed(2)} ms, p99 ${pct(lat, 0.99).toFixed(2)} ms` : "";
  console.log(`${label.padEnd(52)} ${String(Math.round(n / (ms / 1000))).padStart(9)} resolutions/s${extra}  (load ${loadavg()[0]!.toFixed(1)})`);
}

try {
  const env = getEnv();
  let lat: number[] = [];
  await h.db.insert(tenants).values({ id: "ten_b", name: "bench", slug: "bench" });
  await h.db.insert(servers).values({ id: "srv_b", tenantId: "ten_b", name: "bench", resourceUri: "https://mcp.bench.example", upstreamUrl: "http://127.0.0.1:9/mcp" });
  await h.db.insert(fleets).values({ id: "flt_b", name: "bench" });
  await h.db.insert(fleetServers).values({ fleetId: "flt_b", serverId: "srv_b" });
  const [owner] = await h.db.insert(users).values({ id: "usr_bench", email: "owner@bench.example", role: "owner" }).returning();
  const ctx = { db: h.db, actor: await actorForUser(h.db, owner!) };
  const entry = await createEntry(
    ctx,
    { serverId: "srv_b", tenantId: "ten_b", name: "bench key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: `bench-${randomBytes(16).toString("hex")}` },
    env.kek,
  );
  const secret = newSecret();
  const agent = { id: `agt_${randomBytes(16).toString("hex")}`, name: "bench agent", fleetId: "flt_b" };
  await h.db.insert(agents).values({ ...agent, keyHash: hashSecret(secret) });
  const agentKey = formatAgentKey(agent.id, secret);
  const req = { serverId: "srv_b", tenantId: "ten_b" };

  // Context: the machine's own floor (one round trip; one committed insert), and decryption alone.
  lat = [];
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    await h.db.execute(sql`select 1`);
    lat.push(performance.now() - s);
  }
  const rt = pct(lat, 0.5);
  lat = [];
  for (let i = 0; i < 300; i++) {
    const s = performance.now();
    await h.db.execute(sql`insert into audit_events (id, actor_type, actor_id, actor_label, action, target_type, target_id) values (${`evt_bench_${i}`}, 'system', 'b', 'b', 'bench', 'b', 'b')`);
    lat.push(performance.now() - s);
  }
  const [row] = await h.db.select().from(vaultVersions).limit(1);
  const t1 = performance.now();
  for (let i = 0; i < 5000; i++) openSecret(env.keyring, row!.entryId, row!.version, row!);
  console.log(`floor: select 1 p50 ${rt.toFixed(2)} ms; committed insert p50 ${pct(lat, 0.5).toFixed(2)} ms; envelope decrypt ${(((performance.now() - t1) / 5000) * 1000).toFixed(1)} µs`);

  // Service, sequential.
  lat = [];
  for (let i = 0; i < 200; i++) await resolveCredential(h.db, agent, req, env.keyring);
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const s = performance.now();
    await resolveCredential(h.db, agent, req, env.keyring);
    lat.push(performance.now() - s);
  }
  report("service, sequential (uncached)", N, performance.now() - t0, lat);

  // Route handler, in process.
  const call = () =>
    POST(
      new NextRequest("http://127.0.0.1/api/v1/agent/credentials", { method: "POST", headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" }, body: JSON.stringify(req) }),
    );
  for (const conc of [1, 8]) {
    lat = [];
    const per = Math.ceil(N / conc);
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: conc }, async () => {
        for (let i = 0; i < per; i++) {
          const s = performance.now();
          const res = await call();
          if (res.status !== 200) throw new Error(`broker answered ${res.status}: ${await res.text()}`);
          await res.arrayBuffer();
          lat.push(performance.now() - s);
        }
      }),
    );
    report(`route handler, ${conc} concurrent (uncached)`, per * conc, performance.now() - t0, lat);
  }

  // The agent's broker with its cache; its fetch goes to the route handler in process.
  const broker = new CredentialBroker({
    controlPlaneUrl: "http://127.0.0.1",
    agentKey: () => agentKey,
    metrics: new Metrics(),
    log: () => {},
    fetch: (async (input: string | URL | Request, init?: RequestInit) => POST(new NextRequest(String(input), init as ConstructorParameters<typeof NextRequest>[1]))) as typeof fetch,
  });
  const content = (version: number) =>
    ({
      servers: [{ id: "srv_b", tenantIds: ["ten_b"] }],
      credentials: [{ entryId: entry.id, serverId: "srv_b", tenantId: "ten_b", kind: "api_key", placement: { in: "header", name: "x-api-key" }, version }],
    }) as unknown as BundleContent;
  let c = content(1);
  await broker.resolve(c, "srv_b", "ten_b");
  const HITS = N * 100;
  t0 = performance.now();
  for (let i = 0; i < HITS; i++) await broker.resolve(c, "srv_b", "ten_b");
  report("agent CredentialBroker, cached", HITS, performance.now() - t0);

  // A version change in the bundle: the next resolve refetches once (single flight for concurrent callers).
  lat = [];
  const ROT = Math.min(200, N);
  const fetchesBefore = broker.stats.brokerFetches;
  let version = 1;
  t0 = performance.now();
  for (let i = 0; i < ROT; i++) {
    const r = await rotateEntry(ctx, entry.id, { secret: `bench-rot-${i}-${randomBytes(8).toString("hex")}`, graceSeconds: 60 }, env.kek);
    version = r.currentVersion;
    c = content(version);
    const s = performance.now();
    const got = await Promise.all(Array.from({ length: 8 }, () => broker.resolve(c, "srv_b", "ten_b")));
    lat.push(performance.now() - s);
    if (got.some((g) => g?.version !== version)) throw new Error("stale version after rotation");
  }
  const ms = performance.now() - t0;
  console.log(
    `after each of ${ROT} rotations, 8 concurrent resolves: ${broker.stats.brokerFetches - fetchesBefore} broker fetches in all; refetch p50 ${pct(lat, 0.5).toFixed(2)} ms, p99 ${pct(lat, 0.99).toFixed(2)} ms (rotate + refetch ${(ms / ROT).toFixed(1)} ms each)`,
  );
} finally {
  await h.close();
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
}
