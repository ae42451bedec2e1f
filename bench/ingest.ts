/**
 * Sustained decision ingestion into PostgreSQL through the real route
 * handler (app/api/v1/agent/decisions: agent-key auth, gunzip, NDJSON parse,
 * zod per line, multi-row insert, grant learning, commit) called in process
 * with gzip NDJSON bodies built beforehand (the agent's side): decisions per
 * second for batch sizes 1,000 / 5,000 / 10,000, for 2 concurrent shippers,
 * and the cost of grant learning. Needs DATABASE_URL (a local server); uses a
 * fresh database and drops it.
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/postgres npx tsx --conditions=react-server bench/ingest.ts
 *   ROWS=120000 …   (rows per scenario; the default)
 *   BEFORE=1 …      (the default: 2 shippers at batch 10,000 through the route with the ingest path before the
 *                    column insert (bench/ingest-before.ts) and the current one, alternately, PAIRS=2 pairs;
 *                    BEFORE=0 skips them)
 *   ONLY=compare,parts,routes,service,variants   (only these sections; default: all but parts)
 *
 * (--conditions=react-server: the route imports "server-only", as in Next.js.)
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { gzipSync } from "node:zlib";
import { sql } from "drizzle-orm";
import { NextRequest } from "next/server";
import postgres from "postgres";
import { uuidv7 } from "uuidv7";
import { openDatabase } from "@/db/client";
import { agents, fleetServers, fleets, servers, tenants } from "@/db/schema";
import { formatAgentKey, newSecret } from "@/lib/agents/keys";
import { hashSecret } from "@/lib/auth/secrets";
import { decisionLine, ingestDecisions } from "@/lib/decisions/ingest";
import { fastDecisionLine } from "@/lib/enforcement/decision-record";
import { rollupStatement } from "@/lib/decisions/rollups";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const ROWS = Number(process.env.ROWS ?? 120_000);
const BEFORE = process.env.BEFORE !== "0";
const PAIRS = Number(process.env.PAIRS ?? 2);
const ONLY = process.env.ONLY?.split(",") ?? ["compare", "routes", "service", "variants"];
const want = (section: string) => ONLY.includes(section);
const name = `mandate_bench_ingest_${randomBytes(4).toString("hex")}`;
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
const h = await openDatabase({ url: u.toString() });
(globalThis as unknown as { __mandateDb?: Promise<unknown> }).__mandateDb = Promise.resolve(h);
const { POST } = await import("@/app/api/v1/agent/decisions/route");
const { POST: POST_BEFORE } = await import("./ingest-before");
type Handler = typeof POST;

const users = Array.from({ length: 200 }, (_, i) => `user${i}@example.com`);
const clients = ["claude", "cursor", "https://app.example.com/oauth/client.json", "vscode", "zed"];
const tools = ["list_tickets", "get_ticket", "create_ticket", "close_ticket", "search"];
const line = (learn: boolean) => {
  const i = Math.floor(Math.random() * 1_000_000);
  return JSON.stringify({
    id: uuidv7(),
    bundleRevision: 3,
    tenantId: "ten_b",
    serverId: "srv_b",
    method: "tools/call",
    tool: tools[i % tools.length],
    user: learn ? users[i % users.length] : null,
    client: learn ? clients[i % clients.length] : null,
    scopes: ["tickets:read"],
    outcome: i % 10 === 0 ? "deny" : "allow",
    reason: i % 10 === 0 ? "denied by policy pol_x" : "allowed by scope tickets:read",
    determining: ["scope:srv_b:tickets:read"],
    args: { status: "open", project: `p${i % 50}`, limit: 20 },
    context: { groups: ["eng"], token: { iss: "https://idp.example.com", iat: 1_800_000_000, exp: 1_800_003_600 } },
    latencyUs: 150,
  });
};
const body = (size: number, learn = true) => gzipSync(Buffer.from(Array.from({ length: size }, () => line(learn)).join("\n")));

async function makeAgent(id: string): Promise<string> {
  const secret = newSecret();
  await h.db.insert(agents).values({ id, fleetId: "flt_b", name: id, keyHash: hashSecret(secret) });
  return formatAgentKey(id, secret);
}
async function post(key: string, gz: Buffer, handler: Handler = POST) {
  const res = await handler(
    new NextRequest("http://127.0.0.1/api/v1/agent/decisions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/x-ndjson", "content-encoding": "gzip" },
      body: new Uint8Array(gz),
    }),
  );
  if (res.status !== 200) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
}
// CPU seconds (user + system) of this database's PostgreSQL backends, from /proc (same host, readable as root):
// with a machine shared with other work, wall-clock rates vary, CPU cost per decision much less.
async function backendCpu(): Promise<number> {
  const pids = (await h.db.execute(sql`select pid from pg_stat_activity where datname = current_database()`)) as unknown as { pid: number }[];
  let ticks = 0;
  for (const { pid } of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // not on this host, or gone
    }
  }
  return ticks / 100;
}

/** `shippers` agents, each sending its batches one after the other (as agent/shipper.ts does). */
async function run(label: string, size: number, shippers: number, learn = true, handler: Handler = POST) {
  const agentIds = Array.from({ length: shippers }, () => `agt_${randomBytes(16).toString("hex")}`);
  const keys = await Promise.all(agentIds.map(makeAgent));
  const per = Math.max(2, Math.round(ROWS / size / shippers));
  const bodies = keys.map(() => Array.from({ length: per }, () => body(size, learn)));
  const pg0 = await backendCpu();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    keys.map(async (k, s) => {
      for (const b of bodies[s]!) await post(k, b, handler);
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const pg = (await backendCpu()) - pg0;
  const n = per * size * shippers;
  const us = (x: number) => ((x / n) * 1e6).toFixed(1);
  const [{ stored }] = (await h.db.execute(sql`select count(*)::int as stored from decisions where agent_id = any(${sql.param(agentIds)}::text[])`)) as unknown as [{ stored: number }];
  console.log(
    `${label.padEnd(52)} ${String(Math.round(n / secs)).padStart(6)} decisions/s  (${n} rows in ${secs.toFixed(2)} s, ${n - stored} lost; CPU per decision: node ${us((cpu.user + cpu.system) / 1e6)} µs, PostgreSQL ${us(pg)} µs; load ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")})`,
  );
  return { rate: n / secs, node: (cpu.user + cpu.system) / n, pg: (pg / n) * 1e6 };
}

try {
  await h.db.insert(tenants).values({ id: "ten_b", name: "bench", slug: "bench" });
  await h.db.insert(servers).values({ id: "srv_b", tenantId: "ten_b", name: "bench", resourceUri: "https://mcp.bench.example", upstreamUrl: "http://127.0.0.1:9/mcp" });
  await h.db.insert(fleets).values({ id: "flt_b", name: "bench" });
  await h.db.insert(fleetServers).values({ fleetId: "flt_b", serverId: "srv_b" });

  // Where the time goes on the Node side (per line, one core).
  const sample = Array.from({ length: 20_000 }, () => line(true));
  let t0 = performance.now();
  const parsed = sample.map((l) => JSON.parse(l) as unknown);
  const tParse = performance.now() - t0;
  t0 = performance.now();
  for (const p of parsed) decisionLine.parse(p);
  const tZod = performance.now() - t0;
  const parsed2 = sample.map((l) => JSON.parse(l) as unknown);
  t0 = performance.now();
  for (const p of parsed2) if (fastDecisionLine(p) === null) throw new Error("the fast path refused a bench line");
  const tFast = performance.now() - t0;
  const per = (t: number) => ((t / sample.length) * 1000).toFixed(1);
  console.log(`node side per line: JSON.parse ${per(tParse)} µs, zod ${per(tZod)} µs, fast path ${per(tFast)} µs`);

  console.log(
    `ROWS=${ROWS} per scenario; load average at start ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  await run("warm-up (discarded)", 5000, 1);
  if (BEFORE && want("compare")) {
    // Before (an object per row, 16 quoted text[] parameters) and after (columns, JSON arrays), alternately: B A A B …
    const sums = { before: [] as { rate: number; node: number; pg: number }[], after: [] as { rate: number; node: number; pg: number }[] };
    for (let i = 0; i < PAIRS; i++) {
      for (const which of i % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const)) {
        sums[which].push(await run(`2 shippers, batch 10000, route, ${which}`, 10_000, 2, true, which === "before" ? POST_BEFORE : POST));
      }
    }
    const mean = (xs: { rate: number; node: number; pg: number }[], k: "rate" | "node" | "pg") => xs.reduce((a, x) => a + x[k], 0) / xs.length;
    const b = sums.before;
    const a = sums.after;
    console.log(
      `means of ${PAIRS}: before ${Math.round(mean(b, "rate"))}/s (node ${mean(b, "node").toFixed(1)} µs, PostgreSQL ${mean(b, "pg").toFixed(1)} µs); after ${Math.round(mean(a, "rate"))}/s (node ${mean(a, "node").toFixed(1)} µs, PostgreSQL ${mean(a, "pg").toFixed(1)} µs); after/before ${(mean(a, "rate") / mean(b, "rate")).toFixed(2)}×`,
    );
  }
  if (want("parts")) {
    // Two shippers through the service, each batch in one transaction or in two at once (PARTS).
    for (const parts of [2, 1, 1, 2]) {
      const agentsOf = Array.from({ length: 2 }, () => ({ id: `agt_${randomBytes(16).toString("hex")}`, fleetId: "flt_b" }));
      for (const a of agentsOf) await makeAgent(a.id);
      const bodies = agentsOf.map(() => Array.from({ length: Math.max(2, Math.round(ROWS / 20_000)) }, () => Array.from({ length: 10_000 }, () => line(true)).join("\n")));
      const pg0 = await backendCpu();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        agentsOf.map(async (a, i) => {
          for (const b of bodies[i]!) await ingestDecisions(h.db, a, b, Date.now(), { parts });
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const pg = (await backendCpu()) - pg0;
      const n = bodies.length * bodies[0]!.length * 10_000;
      console.log(
        `${`service, 2 shippers, batch 10000, ${parts} part(s)`.padEnd(52)} ${String(Math.round(n / secs)).padStart(6)} decisions/s  (CPU per decision: node ${(((cpu.user + cpu.system) / 1e6 / n) * 1e6).toFixed(1)} µs, PostgreSQL ${((pg / n) * 1e6).toFixed(1)} µs; load ${loadavg()[0]!.toFixed(1)})`,
      );
    }
  }
  if (want("routes")) {
    for (const size of [1000, 5000, 10_000]) await run(`1 shipper, batch ${size}`, size, 1);
    await run("2 concurrent shippers, batch 5000", 5000, 2);
    await run("2 concurrent shippers, batch 10000", 10_000, 2);
    await run("1 shipper, batch 5000, no grant learning", 5000, 1, false);
  }

  // The service alone (no HTTP, no gzip), batch 10,000: one transaction vs. two parts at once (the default).
  // …and, interleaved, the line check through zod only (as before the fast path) vs. the fast path (the default).
  for (const [parts, zodOnly] of !want("service")
    ? []
    : ([
        [1, false],
        [2, true],
        [2, false],
        [2, true],
        [2, false],
      ] as const)) {
    const bodies = Array.from({ length: Math.max(2, Math.round(ROWS / 10_000)) }, () => Array.from({ length: 10_000 }, () => line(true)).join("\n"));
    const agent = { id: `agt_${randomBytes(16).toString("hex")}`, fleetId: "flt_b" };
    await makeAgent(agent.id);
    const pg0 = await backendCpu();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const b of bodies) await ingestDecisions(h.db, agent, b, Date.now(), { parts, zodOnly });
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const pg = (await backendCpu()) - pg0;
    const n = bodies.length * 10_000;
    console.log(
      `${`service only, batch 10000, ${parts} transaction${parts > 1 ? "s at once" : ""}${zodOnly ? ", zod only" : ""}`.padEnd(44)} ${String(Math.round(n / secs)).padStart(6)} decisions/s  (CPU per decision: node ${(((cpu.user + cpu.system) / 1e6 / n) * 1e6).toFixed(1)} µs, PostgreSQL ${((pg / n) * 1e6).toFixed(1)} µs; load ${loadavg()[0]!.toFixed(1)})`,
    );
  }
  // What PostgreSQL maintains per decision (service only, batch 10,000, 2 parts): CPU of its backends per
  // decision with everything on, then with one thing off at a time (put back after).
  // The trigger as shipped (rollupStatement: one aggregate of the stored rows; migration 0025), and in the shape of 0009
  // (three aggregates, each scanning the stored rows, the actor one four times over) with 0019's columns.
  const triggerCurrent = `CREATE OR REPLACE FUNCTION decisions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN ${rollupStatement("new_rows")}; RETURN NULL; END $fn$`;
  const trigger0009 = `CREATE OR REPLACE FUNCTION decisions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO decision_rollups AS r (grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''),
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM new_rows n CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, server_id, tool) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
  INSERT INTO decision_actor_rollups AS r (grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), k.kind, k.actor,
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM new_rows n CROSS JOIN (VALUES ('hour'), ('day')) g(grain) CROSS JOIN LATERAL (VALUES ('user', n.user_id), ('client', n.client_id)) k(kind, actor)
  WHERE k.actor IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, kind, actor) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
  INSERT INTO decision_usage AS r (day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id)
  SELECT date_trunc('day', n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''), coalesce(n.user_id, ''), coalesce(n.client_id, ''), n.method, n.scopes,
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at),
         max(n.at) FILTER (WHERE n.outcome = 'allow'), max(n.id), max(n.id) FILTER (WHERE n.outcome = 'allow')
  FROM new_rows n
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
  ON CONFLICT (day, tenant_id, server_id, tool, user_id, client_id, method, scopes) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at),
        last_allow_at = greatest(r.last_allow_at, excluded.last_allow_at), last_id = greatest(r.last_id, excluded.last_id), last_allow_id = greatest(r.last_allow_id, excluded.last_allow_id);
  RETURN NULL;
END $fn$`;
  const variants: [string, string[], string[]][] = [
    ["as shipped", [], []],
    ["with the trigger in the shape of 0009", [trigger0009], [triggerCurrent]],
    ["as shipped (again, after the 0009 shape)", [], []],
    ["without the rollup trigger", ["alter table decisions disable trigger decisions_rollup"], ["alter table decisions enable trigger decisions_rollup"]],
    ["without the trigram index", ["drop index if exists decisions_args_trgm_idx"], ["create index if not exists decisions_args_trgm_idx on decisions using gin ((args::text) gin_trgm_ops)"]],
    // B-tree indexes (the largest share of PostgreSQL's insert time in a profile): what one costs.
    ["without the (at, id) index", ["drop index if exists decisions_at_id_idx"], ["create index if not exists decisions_at_id_idx on decisions (at desc nulls last, id desc nulls last)"]],
    ["without the (tool, at) index", ["drop index if exists decisions_tool_at_idx"], ["create index if not exists decisions_tool_at_idx on decisions (tool, at desc nulls last)"]],
    [
      "without the (fleet, revision, at) index",
      ["drop index if exists decisions_fleet_revision_at_idx"],
      ["create index if not exists decisions_fleet_revision_at_idx on decisions (fleet_id, bundle_revision, at desc nulls last)"],
    ],
  ];
  if (process.env.VARIANTS !== "0" && want("variants")) {
    for (const [label, off, on] of variants) {
      for (const q of off) await h.db.execute(sql.raw(q));
      const bodies = Array.from({ length: Math.max(2, Math.round(ROWS / 10_000)) }, () => Array.from({ length: 10_000 }, () => line(true)).join("\n"));
      const agent = { id: `agt_${randomBytes(16).toString("hex")}`, fleetId: "flt_b" };
      await makeAgent(agent.id);
      const pg0 = await backendCpu();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const b of bodies) await ingestDecisions(h.db, agent, b, Date.now());
      const secs = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const pg = (await backendCpu()) - pg0;
      const n = bodies.length * 10_000;
      console.log(
        `${`PostgreSQL work: ${label}`.padEnd(44)} ${String(Math.round(n / secs)).padStart(6)} decisions/s  (CPU per decision: node ${(((cpu.user + cpu.system) / 1e6 / n) * 1e6).toFixed(1)} µs, PostgreSQL ${((pg / n) * 1e6).toFixed(1)} µs; load ${loadavg()[0]!.toFixed(1)})`,
      );
      for (const q of on) await h.db.execute(sql.raw(q));
    }
  }
  const [{ n }] = (await h.db.execute(sql`select count(*)::int as n from decisions`)) as unknown as [{ n: number }];
  const [{ g }] = (await h.db.execute(sql`select count(*)::int as g from grants`)) as unknown as [{ g: number }];
  console.log(
    `rows stored: ${n}; grants learned: ${g}; load average at end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
} finally {
  await h.close();
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
}
