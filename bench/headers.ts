/**
 * Header-first authorization (MCP 2026-07-28): the time the agent takes to answer a denied `tools/call`
 *
 *   headers  a stateless request (MCP-Protocol-Version 2026-07-28, Mcp-Method, Mcp-Name): denied on
 *            its headers by decideOnHeaders(); before the denial is answered the body is still
 *            scanned and parsed once, to answer HeaderMismatch first if it disagrees (spec order);
 *   body     the same call in the handshake era (MCP-Protocol-Version 2025-11-25, no Mcp-Method
 *            or Mcp-Name: the agent never decides on those headers there): the body is scanned,
 *            parsed and the message checked before decide() denies it (the upstream serves that
 *            era statelessly, and a denied call never reaches it, so no session is needed);
 *
 * for the same tool (not in the approved catalogue: denied at stage "catalogue" either way), the same
 * token and agent, with arguments of ARG_SIZES bytes (default 200, 65,536 and 1,048,576), c=1, closed
 * loop, alternating slices (headers, body, body, headers; ROUNDS times) so drift of a shared machine
 * cancels. Every denial is durable in the decision log before it is answered (one fsync each, on
 * BENCH_DATA_DIR: put it on /dev/shm to see the decision itself rather than the disk).
 *
 * Real peers, as bench/list.ts: a fresh database (PostgreSQL beside DATABASE_URL, else embedded PGlite),
 * the control plane's agent API over node:http in this process, the agent as a child process, the
 * SDK v2 upstream of the tests (test/agent-stateless-peers.ts, never reached by a denied call), ES256
 * tokens checked by the real TokenValidator.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/headers.ts
 *   N=400 ROUNDS=2 ARG_SIZES=200,1048576 BENCH_DATA_DIR=/dev/shm …
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { quantile, startBenchAgent, stop } from "./harness";

const N = Number(process.env.N ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const WARMUP = Number(process.env.WARMUP ?? 20);
const SIZES = (process.env.ARG_SIZES ?? "200,65536,1048576").split(",").map(Number);
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
const { startV2Upstream } = await import("@/test/agent-stateless-peers");

const V = "2026-07-28";
const META = { "io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {} };
const kek = { id: "kek-bench", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const t = await createTestDb();
g.__mandateDb = Promise.resolve(t.handle);
let agentProc: ChildProcess | null = null;
const dataDir = await mkdtemp(path.join(process.env.BENCH_DATA_DIR ?? tmpdir(), "mandate-bench-headers-"));
const [cp, issuer, agentPort, up] = await Promise.all([startShipControlPlane(), startIssuer(), freePort(), startV2Upstream()]);
let pool: Pool | null = null;
try {
  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Bench headers "),
      resourceUri,
      upstreamUrl: up.url,
      scopes: ["tickets:read"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const serverId = server!.id;
  await importCatalog(owner.ctx, serverId);
  // delete_project stays out of the approved catalogue: denied at stage "catalogue", on the headers or after the body.
  for (const tool of await t.db.select().from(tools).where(eq(tools.serverId, serverId)))
    if (tool.name !== "delete_project") await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets"] } });
  const fleet = (await createFleet(owner.ctx, { name: uniq("Bench headers edge "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "bench headers" }, kek);
  agentProc = await startBenchAgent({ root, controlPlaneUrl: cp.url, enrollmentToken: enrollment.token, keys, port: agentPort, dataDir, name: "bench-headers-agent" });
  const bearer = await issuer.sign({ sub: "alice", tenant: tenantId, client_id: "bench", scope: "tickets:read" }, resourceUri, "2h");

  pool = new Pool(`http://127.0.0.1:${agentPort}`, { connections: 1 });
  const base = { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
  const send = async (headers: Record<string, string>, body: string): Promise<{ status: number; text: string }> => {
    const r = await pool!.request({ path: "/mcp", method: "POST", headers: { ...base, ...headers }, body });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const results: { size: number; path: string; n: number; p50: number; p99: number }[] = [];
  for (const size of SIZES) {
    const args = { project: "ops", note: "x".repeat(Math.max(0, size - 40)) };
    const paths: { path: string; headers: Record<string, string>; body: string }[] = [
      {
        path: "headers",
        headers: { "mcp-protocol-version": V, "mcp-method": "tools/call", "mcp-name": "delete_project" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "delete_project", arguments: args, _meta: META } }),
      },
      { path: "body", headers: { "mcp-protocol-version": "2025-11-25" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "delete_project", arguments: args } }) },
    ];
    for (const p of paths) {
      for (let i = 0; i < WARMUP; i++) {
        const r = await send(p.headers, p.body);
        if (r.status !== 200 || !r.text.includes('"code":-32003')) throw new Error(`${p.path} (${size} B): not denied: ${r.status} ${r.text.slice(0, 300)}`);
        if (p.path === "headers" && !r.text.includes("decided on the Mcp-Method and Mcp-Name headers")) throw new Error(`headers (${size} B): not decided on the headers: ${r.text.slice(0, 300)}`);
        if (p.path === "body" && r.text.includes("decided on the Mcp-Method")) throw new Error("body: decided on the headers");
      }
    }
    const lat = new Map(paths.map((p) => [p.path, [] as number[]]));
    const per = Math.max(1, Math.floor(N / (ROUNDS * 2)));
    for (let r = 0; r < ROUNDS; r++)
      for (const p of [...paths, ...[...paths].reverse()])
        for (let i = 0; i < per; i++) {
          const s = performance.now();
          await send(p.headers, p.body);
          lat.get(p.path)!.push(performance.now() - s);
        }
    for (const p of paths) {
      const xs = lat.get(p.path)!.sort((a, b) => a - b);
      results.push({ size: Buffer.byteLength(p.body), path: p.path, n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) });
    }
  }
  console.log(
    `\ndenied tools/call answered by the agent (no upstream), c=1, ${ROUNDS * 2} alternating slices per path; decision log on ${process.env.BENCH_DATA_DIR ?? tmpdir()} (node ${process.version}, ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")})\n`,
  );
  console.log("body bytes   decided on   calls   p50 ms   p99 ms   p50 ratio (body / headers)");
  for (let i = 0; i < SIZES.length; i++) {
    const h = results[2 * i]!;
    const b = results[2 * i + 1]!;
    for (const r of [h, b])
      console.log(
        `${String(r.size).padStart(10)}   ${r.path.padEnd(11)} ${String(r.n).padStart(7)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}${r === b ? `   ${(b.p50 / h.p50).toFixed(2)}` : ""}`,
      );
  }
} finally {
  await pool?.close();
  await stop(agentProc);
  await Promise.all([cp.close(), issuer.close(), up.stop()]);
  delete g.__mandateDb;
  await stopBundleListener(t.handle);
  await t.close();
  await rm(dataDir, { recursive: true, force: true });
}
