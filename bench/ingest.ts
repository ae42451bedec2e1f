/**
 * Sustained decision ingestion into PostgreSQL through lib/decisions/ingest
 * (parse + validate + multi-row insert, no HTTP): decisions per second for
 * several batch sizes. Needs DATABASE_URL (a local server); uses a fresh
 * database and drops it.   npx tsx bench/ingest.ts
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { uuidv7 } from "uuidv7";
import { openDatabase } from "@/db/client";
import { agents, fleetServers, fleets, servers, tenants } from "@/db/schema";
import { ingestDecisions } from "@/lib/decisions/ingest";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const name = `mandate_bench_ingest_${randomBytes(4).toString("hex")}`;
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
const h = await openDatabase({ url: u.toString() });
try {
  await h.db.insert(tenants).values({ id: "ten_b", name: "bench", slug: "bench" });
  await h.db.insert(servers).values({ id: "srv_b", tenantId: "ten_b", name: "bench", resourceUri: "https://mcp.bench.example", upstreamUrl: "http://127.0.0.1:9/mcp" });
  await h.db.insert(fleets).values({ id: "flt_b", name: "bench" });
  await h.db.insert(fleetServers).values({ fleetId: "flt_b", serverId: "srv_b" });
  await h.db.insert(agents).values({ id: "agt_b", fleetId: "flt_b", name: "bench", keyHash: "0".repeat(64) });
  const agent = { id: "agt_b", fleetId: "flt_b" };
  const line = () =>
    JSON.stringify({ id: uuidv7(), serverId: "srv_b", tenantId: "ten_b", method: "tools/call", tool: "list_tickets", user: "alice", client: "claude", scopes: ["tickets:read"], outcome: "allow", determining: ["scope:srv_b:tickets:read"], args: { status: "open" }, latencyUs: 150 });
  for (const size of [500, 2000, 5000]) {
    const batches = Array.from({ length: Math.max(4, Math.floor(60_000 / size)) }, () => Array.from({ length: size }, line).join("\n"));
    const t0 = performance.now();
    for (const b of batches) await ingestDecisions(h.db, agent, b);
    const s = (performance.now() - t0) / 1000;
    console.log(`batch ${String(size).padStart(5)}: ${Math.round((batches.length * size) / s)} decisions/s (${batches.length * size} rows in ${s.toFixed(1)} s)`);
  }
  const [{ n }] = (await h.db.execute(sql`select count(*)::int as n from decisions`)) as unknown as [{ n: number }];
  console.log(`rows stored: ${n}`);
} finally {
  await h.close();
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
}
