/**
 * `tools/list` of a large approved catalogue (TOOLS, default 1,000) for one caller: directly from the
 * upstream vs through the agent (token check, decision per tool, listFilter), c=1, closed loop, in
 * alternating slices (direct, agent, agent, direct, ROUNDS times) so drift of a shared machine cancels.
 * Target (issue 12): ≤ 5 ms added at p50.
 *
 * Real peers, as bench/gateway.ts: a fresh PostgreSQL database beside DATABASE_URL (dropped at the end),
 * the control plane's agent API over node:http in this process, the agent and the upstream
 * (bench/many-tools-upstream.mjs) as child processes, ES256 tokens checked by the real TokenValidator.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/mandate_test node --import ./bench/no-server-only.mjs --import tsx bench/list.ts
 *   BEFORE=0 leaves out the "before" path: a second agent without the whole-list memo (MANDATE_LIST_MEMO=0:
 *   every entry decided on every list, as before issue 12's fourth round); BEFORE_ENV='{"MANDATE_CEDAR_JS":"0"}'
 *   sets the before agent's environment instead (e.g. cedar-wasm only, as before the second round).
 *   BARE=0 leaves out the floor (a bare reverse proxy that streams the answer through: no auth, no decision, no screening).
 *   N=400 ROUNDS=2 TOOLS=1000 AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" …
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { connect, quantile, spawnReady, startBenchAgent, stop } from "./harness";

const N = Number(process.env.N ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const TOOLS = Number(process.env.TOOLS ?? 1000);
const WARMUP = Number(process.env.WARMUP ?? 5);
if (!process.env.DATABASE_URL) throw new Error("set DATABASE_URL to a local PostgreSQL server");
process.env.MANDATE_EGRESS_ALLOW ??= "loopback";

const root = fileURLToPath(new URL("..", import.meta.url));
const { eq } = await import("drizzle-orm");
const { tools } = await import("@/db/schema");
const { stopBundleListener } = await import("@/lib/agents/bundle-waiter");
const { publishBundle } = await import("@/lib/bundles/service");
const { activeSigningKey, publicKeys } = await import("@/lib/bundles/signing");
const { approveTool, importCatalog } = await import("@/lib/catalog/service");
const { createEnrollmentToken, createFleet } = await import("@/lib/fleets/service");
const { putScopeMapping } = await import("@/lib/scopes/service");
const { createServerInput } = await import("@/lib/servers/schemas");
const { createServer } = await import("@/lib/servers/service");
const { createTestDb, makeTenant, makeUser, uniq } = await import("@/test/db");
const { freePort } = await import("@/test/sandbox");
const { startIssuer } = await import("@/test/agent-proc-harness");
const { startShipControlPlane } = await import("@/test/agent-ship-harness");

const kek = { id: "kek-bench", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const t = await createTestDb();
g.__mandateDb = Promise.resolve(t.handle);
let agentProc: ChildProcess | null = null;
let beforeProc: ChildProcess | null = null;
const BEFORE = process.env.BEFORE !== "0";
let upstreamProc: ChildProcess | null = null;
let bareProc: ChildProcess | null = null;
/** BARE=0 leaves out the floor: a bare reverse proxy (bench/bare-proxy.mjs, no auth, no decision, streams the answer through). */
const BARE = process.env.BARE !== "0";
const dataDir = await mkdtemp(path.join(process.env.BENCH_DATA_DIR ?? tmpdir(), "mandate-bench-list-"));
const beforeDir = await mkdtemp(path.join(process.env.BENCH_DATA_DIR ?? tmpdir(), "mandate-bench-list-before-"));
const [cp, issuer, agentPort, upstreamPort, beforePort, barePort] = await Promise.all([startShipControlPlane(), startIssuer(), freePort(), freePort(), freePort(), freePort()]);
try {
  upstreamProc = await spawnReady(root, ["bench/many-tools-upstream.mjs", String(upstreamPort), String(TOOLS)], "the upstream");
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
  if (BARE) bareProc = await spawnReady(root, ["bench/bare-proxy.mjs", String(barePort), upstreamUrl], "the bare proxy");
  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Bench list "),
      resourceUri,
      upstreamUrl,
      scopes: ["records:read"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const serverId = server!.id;
  await importCatalog(owner.ctx, serverId);
  const rows = await t.db.select().from(tools).where(eq(tools.serverId, serverId));
  if (rows.length !== TOOLS) throw new Error(`imported ${rows.length} tools, expected ${TOOLS}`);
  for (const tool of rows) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  console.log(`${TOOLS} tools imported and approved`);
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "records:read": rows.map((r) => r.name) } });
  const fleet = (await createFleet(owner.ctx, { name: uniq("Bench list edge "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "bench list" }, kek);

  agentProc = await startBenchAgent({ root, controlPlaneUrl: cp.url, enrollmentToken: enrollment.token, keys, port: agentPort, dataDir, name: "bench-list-agent" });
  if (BEFORE) {
    const second = await createEnrollmentToken(owner.ctx, fleet.id);
    beforeProc = await startBenchAgent({
      root,
      controlPlaneUrl: cp.url,
      enrollmentToken: second.token,
      keys,
      port: beforePort,
      dataDir: beforeDir,
      name: "bench-list-agent-before",
      env: { ...(process.env.BEFORE_ENV ? (JSON.parse(process.env.BEFORE_ENV) as Record<string, string>) : { MANDATE_LIST_MEMO: "0" }), MANDATE_PUBLIC_ORIGIN: new URL(resourceUri).origin },
    });
  }
  const bearer = await issuer.sign({ sub: "alice", tenant: tenantId, client_id: "bench", scope: "records:read" }, resourceUri, "2h");

  const paths = [
    { target: "direct", client: await connect(upstreamUrl, null) },
    ...(BARE ? [{ target: "bare", client: await connect(`http://127.0.0.1:${barePort}/mcp`, null) }] : []),
    { target: "agent", client: await connect(resourceUri, bearer) },
    ...(BEFORE ? [{ target: "before", client: await connect(`http://127.0.0.1:${beforePort}/mcp`, bearer) }] : []),
  ];
  const lat = new Map(paths.map((p) => [p.target, [] as number[]]));
  for (const p of paths) {
    // Warm-up (JIT, keep-alive sockets, JWKS and token caches, the decision slices) and a sanity check.
    const w0 = performance.now();
    for (let i = 0; i < WARMUP; i++) {
      const r = await p.client.listTools();
      if (r.tools.length !== TOOLS) throw new Error(`${p.target}: ${r.tools.length} tools listed, expected ${TOOLS}`);
    }
    console.log(`${p.target}: ${WARMUP} warm-up lists, mean ${((performance.now() - w0) / WARMUP).toFixed(1)} ms`);
  }
  const per = Math.max(1, Math.floor(N / (ROUNDS * 2)));
  for (let r = 0; r < ROUNDS; r++)
    for (const p of [...paths, ...[...paths].reverse()])
      for (let i = 0; i < per; i++) {
        const s = performance.now();
        await p.client.listTools();
        lat.get(p.target)!.push(performance.now() - s);
      }
  await Promise.all(paths.map((p) => p.client.close()));
  const stat = (target: string) => {
    const xs = lat.get(target)!.sort((a, b) => a - b);
    return { n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
  };
  const d = stat("direct");
  const a = stat("agent");
  const b = BEFORE ? stat("before") : null;
  const f = BARE ? stat("bare") : null;
  console.log(
    `\ntools/list of ${TOOLS} approved tools, one caller (c=1), ${ROUNDS * 2} alternating slices per path (node ${process.version}, ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")})\n`,
  );
  console.log("target    lists   p50 ms   p99 ms");
  for (const [name, s] of [["direct", d], ...(f ? [["bare", f] as const] : []), ["agent", a], ...(b ? [["before", b] as const] : [])] as const)
    console.log(`${name.padEnd(8)} ${String(s.n).padStart(6)} ${s.p50.toFixed(2).padStart(8)} ${s.p99.toFixed(2).padStart(8)}`);
  if (f) console.log(`\nbare proxy added (streams through, no screening): p50 +${(f.p50 - d.p50).toFixed(2)} ms, p99 +${(f.p99 - d.p99).toFixed(2)} ms`);
  console.log(`${f ? "" : "\n"}agent added: p50 +${(a.p50 - d.p50).toFixed(2)} ms, p99 +${(a.p99 - d.p99).toFixed(2)} ms (target ≤ 5 ms at p50)`);
  if (b)
    console.log(
      `before (${process.env.BEFORE_ENV ?? "MANDATE_LIST_MEMO=0"}) added: p50 +${(b.p50 - d.p50).toFixed(2)} ms, p99 +${(b.p99 - d.p99).toFixed(2)} ms; added p50 before / after ×${((b.p50 - d.p50) / (a.p50 - d.p50)).toFixed(1)}`,
    );
} finally {
  await Promise.all([stop(agentProc), stop(upstreamProc), stop(beforeProc), stop(bareProc)]);
  await Promise.all([cp.close(), issuer.close()]);
  delete g.__mandateDb;
  await stopBundleListener(t.handle);
  await t.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(beforeDir, { recursive: true, force: true });
}
