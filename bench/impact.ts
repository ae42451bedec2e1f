/**
 * Impact analysis of a draft bundle (lib/bundles/impact.ts): 100,000
 * tools/call decisions seeded in a fresh database, a published baseline
 * (scope mapping + a permit), a draft that adds a forbid on an argument value
 * and replaces the permit, then analyzeImpact for the 10,000 and 100,000 most
 * recent decisions, with the load (keyset chunks from PostgreSQL) / replay
 * (two PolicyEngines) split. Needs DATABASE_URL (a local server); creates the
 * database mandate_bench_impact and drops it.
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/postgres node --import tsx --conditions=react-server bench/impact.ts
 *   ROWS=100000 …   (decisions seeded)
 *
 * (--conditions=react-server: the services import "server-only", as in Next.js.
 * lib/enforcement/engine.ts turns TurboFan inlining off itself: see docs/masking-impact.md.)
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { openDatabase } from "@/db/client";
import { decisions, fleetServers, fleets, users, type NewDecision } from "@/db/schema";
import { actorForUser } from "@/lib/auth/actors";
import { analyzeImpact } from "@/lib/bundles/impact";
import { publishBundle } from "@/lib/bundles/service";
import { addTool } from "@/lib/catalog/service";
import { ensurePartitions } from "@/lib/decisions/partitions";
import { newId } from "@/lib/ids";
import { createPolicy, deletePolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTenant } from "@/lib/tenants/service";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("set DATABASE_URL to a local PostgreSQL server");
const ROWS = Number(process.env.ROWS ?? 100_000);
const name = "mandate_bench_impact";
const admin = postgres(url, { max: 1, onnotice: () => {} });
await admin.unsafe(`drop database if exists ${name} with (force)`);
await admin.unsafe(`create database ${name}`);
const u = new URL(url);
u.pathname = `/${name}`;
const h = await openDatabase({ url: u.toString() });

try {
  const [user] = await h.db
    .insert(users)
    .values({ id: newId("user"), email: "bench@example.com", name: "bench", role: "owner" })
    .returning();
  const ctx = { db: h.db, actor: await actorForUser(h.db, user!) };
  const kek = { id: "bench", key: randomBytes(32) };
  const tenant = (await createTenant(ctx, { name: "Bench" }))!;
  const server = (await createServer(
    ctx,
    createServerInput.parse({ tenantId: tenant.id, name: "tickets", resourceUri: "https://mcp.bench.example/mcp", upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["tickets:read", "tickets:write"] }),
  ))!;
  const toolNames = ["list_tickets", "get_ticket", "create_ticket", "close_ticket", "refund"];
  for (const t of toolNames) {
    await addTool(ctx, server.id, {
      name: t,
      description: t,
      inputSchema: { type: "object", properties: { project: { type: "string" }, id: { type: "string" }, amount: { type: "integer" } } },
      annotations: {},
      risk: "low",
    });
  }
  await putScopeMapping(ctx, server.id, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  const refunds = (await createPolicy(ctx, {
    tenantId: tenant.id,
    serverId: server.id,
    name: "finance refunds",
    description: "",
    kind: "cedar",
    cedar: `permit (principal in Group::"finance", action == Action::"call_tool", resource == Tool::"${server.id}/refund");`,
    enabled: true,
  }))!;
  const fleetId = newId("fleet");
  await h.db.insert(fleets).values({ id: fleetId, name: "bench" });
  await h.db.insert(fleetServers).values({ fleetId, serverId: server.id });
  await publishBundle(ctx, fleetId, { note: "baseline" }, kek);
  // The draft: a forbid on an argument value, and the refund permit replaced by an amount cap.
  await createPolicy(ctx, {
    tenantId: tenant.id,
    serverId: server.id,
    name: "no secret projects",
    description: "",
    kind: "cedar",
    cedar: `forbid (principal, action, resource) when { context.args has project && context.args.project like "secret-*" };`,
    enabled: true,
  });
  await deletePolicy(ctx, refunds.id);
  await createPolicy(ctx, {
    tenantId: tenant.id,
    serverId: server.id,
    name: "small refunds",
    description: "",
    kind: "cedar",
    cedar: `permit (principal, action == Action::"call_tool", resource == Tool::"${server.id}/refund") when { context.args has amount && context.args.amount < 100 };`,
    enabled: true,
  });

  // Seed: decisions over the last 2 days, multi-row inserts of 2,000.
  const now = Date.now();
  const span = 2 * 86_400_000;
  const ts = Date.now();
  await ensurePartitions(h.db, [now - span, now - span / 2, now]);
  // Pessimistic for the memo: users, clients, projects and amounts drawn at random, so few requests repeat exactly.
  let seed = 42;
  const rnd = (n: number) => {
    // mulberry32: independent low bits (an LCG's are periodic and would correlate users with projects).
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  for (let off = 0; off < ROWS; off += 2_000) {
    const rows: NewDecision[] = [];
    for (let i = off; i < Math.min(ROWS, off + 2_000); i++) {
      const tool = toolNames[i % toolNames.length]!;
      const write = tool === "create_ticket" || tool === "close_ticket";
      rows.push({
        id: `d${String(i).padStart(7, "0")}`,
        at: new Date(now - span + Math.floor((i / ROWS) * span)),
        agentId: "agt_bench",
        fleetId,
        bundleRevision: 1,
        tenantId: tenant.id,
        serverId: server.id,
        method: "tools/call",
        tool,
        userId: `user${rnd(2000)}@example.com`,
        clientId: ["claude", "cursor", "vscode"][rnd(3)]!,
        scopes: write ? ["tickets:read", "tickets:write"] : ["tickets:read"],
        outcome: "allow",
        args: tool === "refund" ? { amount: rnd(300) } : { project: rnd(97) === 0 ? `secret-${rnd(5)}` : `p${rnd(200)}`, id: `T-${i}` },
        context: { groups: rnd(4) === 0 ? ["finance"] : ["eng"], token: { iss: "https://idp.example.com", iat: 1_800_000_000, exp: 1_800_003_600 } },
      });
    }
    await h.db.insert(decisions).values(rows);
  }
  await h.db.execute(sql`analyze decisions`);
  console.log(`seeded ${ROWS.toLocaleString("en")} decisions in ${((Date.now() - ts) / 1000).toFixed(1)} s`);

  for (const limit of [10_000, 100_000, 100_000]) {
    if (limit > ROWS) continue;
    const rss0 = process.memoryUsage().rss;
    const cpu0 = process.cpuUsage();
    const r = await analyzeImpact(ctx, fleetId, { limit });
    const cpu = process.cpuUsage(cpu0);
    const { compileMs, loadMs, replayMs, totalMs } = r.timing;
    console.log(
      `impact ${String(limit).padStart(7)}: total ${totalMs.toFixed(0).padStart(5)} ms (compile+engines ${compileMs.toFixed(0)} ms, load ${loadMs.toFixed(0)} ms, replay ${replayMs.toFixed(0)} ms = ${((replayMs * 1000) / r.totals.loaded).toFixed(1)} µs/decision), ` +
        `allow→deny ${r.totals.allowToDeny}, deny→allow ${r.totals.denyToAllow}, unchanged ${r.totals.unchanged}, skipped ${r.totals.skipped}, memo hits ${r.totals.memoHits}, process CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, rss +${((process.memoryUsage().rss - rss0) / 1e6).toFixed(0)} MB, load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
} finally {
  await h.close();
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
}
