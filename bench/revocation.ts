/**
 * Revocation to enforcement: 10 agents (child processes, agent/main.ts)
 * long-polling a control plane (the agent API route handlers over node:http in
 * this process, on a fresh PostgreSQL database), then REVOCATIONS grant
 * revocations one after another. For each: the time from the start of the
 * revoke call (revokeGrant: revocations row + signed live-bundle revision,
 * one transaction) until EVERY agent refuses the revoked token with 401,
 * each agent polled with the token every ~2 ms. Prints p50/p99/max.
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/mandate_test npx tsx bench/revocation.ts
 *   AGENTS=10 REVOCATIONS=50 POLL_MS=2 …
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { register } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

// Next.js' "server-only" marker throws outside React Server Components: resolve it to an empty module for this script alone.
register(`data:text/javascript,${encodeURIComponent(`export async function resolve(s, c, n) { return s === "server-only" ? { url: "data:text/javascript,", shortCircuit: true } : n(s, c); }`)}`);

const AGENTS = Number(process.env.AGENTS ?? 10);
const REVOCATIONS = Number(process.env.REVOCATIONS ?? 50);
const POLL_MS = Number(process.env.POLL_MS ?? 2);
if (!process.env.DATABASE_URL) throw new Error("set DATABASE_URL to a local PostgreSQL server");

const root = fileURLToPath(new URL("..", import.meta.url));
const { stopBundleListener } = await import("@/lib/agents/bundle-waiter");
const { publishBundle } = await import("@/lib/bundles/service");
const { activeSigningKey, publicKeys } = await import("@/lib/bundles/signing");
const { createEnrollmentToken, createFleet } = await import("@/lib/fleets/service");
const { importGrants, importGrantsInput, revokeGrant } = await import("@/lib/grants/service");
const { createServerInput } = await import("@/lib/servers/schemas");
const { createServer } = await import("@/lib/servers/service");
const { grants } = await import("@/db/schema");
const { eq } = await import("drizzle-orm");
const { createTestDb, makeTenant, makeUser, uniq } = await import("@/test/db");
const { freePort, startSandbox } = await import("@/test/sandbox");
const { startIssuer } = await import("@/test/agent-proc-harness");
const { startShipControlPlane } = await import("@/test/agent-ship-harness");

// The poller (plain JS, worker thread): "check" asks each agent once; "until401" polls every agent every ~pollMs
// until each refuses the token, and answers the absolute times (timeOrigin + now) of each first 401.
const POLLER = `
const { parentPort } = require("node:worker_threads");
const now = () => performance.timeOrigin + performance.now();
const ping = async (port, token) => {
  // Not JSON: an accepted token gets the agent's own 400 parse error, without a trip to the upstream.
  const res = await fetch("http://127.0.0.1:" + port + "/mcp", { method: "POST", headers: { authorization: "Bearer " + token, "content-type": "application/json", accept: "application/json, text/event-stream" }, body: "{" });
  await res.arrayBuffer();
  return res.status;
};
parentPort.on("message", async ({ kind, ports, token, pollMs }) => {
  try {
    if (kind === "check") return parentPort.postMessage({ statuses: await Promise.all(ports.map((p) => ping(p, token))) });
    const t0 = now();
    let polls = 0;
    const refusedAt = await Promise.all(ports.map(async (p) => {
      for (;;) {
        polls++;
        if ((await ping(p, token)) === 401) return now();
        if (now() - t0 > 30000) throw new Error("agent on " + p + " still accepts a token revoked 30 s ago");
        await new Promise((r) => setTimeout(r, pollMs));
      }
    }));
    parentPort.postMessage({ refusedAt, polls });
  } catch (err) {
    parentPort.postMessage({ error: String(err) });
  }
});
`;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
const f = (v: number) => v.toFixed(1).padStart(7);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const kek = { id: "kek-bench", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const t = await createTestDb();
g.__mandateDb = Promise.resolve(t.handle);
const procs: ChildProcess[] = [];
const dirs: string[] = [];
const [sandbox, cp, issuer] = await Promise.all([startSandbox(), startShipControlPlane(), startIssuer()]);
try {
  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const ports = await Promise.all(Array.from({ length: AGENTS }, () => freePort()));
  // Agents match servers by path: every agent serves the same resource on its own port.
  const resourceUri = `http://127.0.0.1:${ports[0]}/mcp`;
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Bench "),
      resourceUri,
      upstreamUrl: sandbox.url,
      scopes: ["tickets:read"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const serverId = server!.id;
  const fleet = (await createFleet(owner.ctx, { name: uniq("Bench edge "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  await publishBundle(owner.ctx, fleet.id, { note: "bench" }, kek);
  const bundleKeys = JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) });

  for (let i = 0; i < AGENTS; i++) {
    const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
    const dataDir = await mkdtemp(path.join(tmpdir(), "mandate-bench-rvk-"));
    dirs.push(dataDir);
    procs.push(
      spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          "agent/main.ts",
          "--control-plane",
          cp.url,
          "--enrollment-token",
          enrollment.token,
          "--port",
          String(ports[i]),
          "--data-dir",
          dataDir,
          "--wait",
          "30",
          "--name",
          `rvk-agent-${i}`,
        ],
        { cwd: root, env: { ...process.env, MANDATE_BUNDLE_KEYS: bundleKeys }, stdio: ["ignore", "ignore", "inherit"] },
      ),
    );
  }
  const deadline = Date.now() + 120_000;
  for (const port of ports) {
    while (
      !(await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      ))
    ) {
      if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) throw new Error("an agent did not become ready");
      await sleep(100);
    }
  }

  // One grant per revocation (user u<i>, client bench-client), each with its own token.
  const users = Array.from({ length: REVOCATIONS }, (_, i) => `u${i}`);
  await importGrants(owner.ctx, importGrantsInput.parse({ tenantId, grants: users.map((userId) => ({ serverId, userId, clientId: "bench-client", scopes: ["tickets:read"] })) }));
  const grantIds = new Map((await t.db.select().from(grants).where(eq(grants.tenantId, tenantId))).map((r) => [r.userId, r.id]));
  const tokens = await Promise.all(users.map((sub) => issuer.sign({ sub, tenant: tenantId, client_id: "bench-client", scope: "tickets:read" }, resourceUri, "2h")));

  // The polling runs in a worker thread: in this thread it would starve the control plane (same event loop) it measures.
  const poller = new Worker(POLLER, { eval: true });
  const poll = (msg: { kind: "check" | "until401"; ports: number[]; token: string }) =>
    new Promise<{ statuses?: number[]; refusedAt?: number[]; polls?: number; error?: string }>((resolve) => {
      poller.once("message", resolve);
      poller.postMessage({ ...msg, pollMs: POLL_MS });
    });
  const now = () => performance.timeOrigin + performance.now(); // comparable across threads

  const total: number[] = [];
  const afterCommit: number[] = [];
  const firstAgent: number[] = [];
  const callMs: number[] = [];
  let polls = 0;
  for (let i = 0; i < REVOCATIONS; i++) {
    const token = tokens[i]!;
    const before = await poll({ kind: "check", ports, token });
    if (before.statuses!.some((st) => st !== 400)) throw new Error(`agents answered ${before.statuses!.join(",")} before the revocation (expected their 400 parse error)`);
    await sleep(300); // let the previous revision settle and the long polls re-arm
    const polled = poll({ kind: "until401", ports, token });
    const t0 = now();
    let committed = NaN;
    const revoke = revokeGrant(owner.ctx, grantIds.get(users[i]!)!, { reason: `bench ${i}` }, kek).then(() => (committed = now()));
    const r = await polled;
    if (r.error) throw new Error(r.error);
    polls += r.polls!;
    const refusedAt = r.refusedAt!;
    await revoke;
    const last = Math.max(...refusedAt);
    total.push(last - t0);
    afterCommit.push(last - committed);
    callMs.push(committed - t0);
    firstAgent.push(Math.min(...refusedAt) - t0);
  }
  // The old tokens stay refused everywhere.
  for (const token of tokens.slice(0, 5)) if ((await poll({ kind: "check", ports, token })).statuses!.some((st) => st !== 401)) throw new Error("a revoked token was accepted again");
  await poller.terminate();

  for (const a of [total, afterCommit, firstAgent, callMs]) a.sort((x, y) => x - y);
  console.log(`\nrevocation → enforcement on every agent: ${REVOCATIONS} revocations, ${AGENTS} agents (child processes), polled every ~${POLL_MS} ms (${polls} polls)`);
  console.log(
    `node ${process.version}, ${cpus().length} cores (load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}), PostgreSQL; agents long-poll (wait=30 s), republish = new signed live-bundle revision\n`,
  );
  console.log("                                       p50 ms   p99 ms   max ms");
  console.log(`from the revoke call's start, all:    ${f(quantile(total, 0.5))}  ${f(quantile(total, 0.99))}  ${f(total.at(-1)!)}`);
  console.log(`from the revoke call's start, first:  ${f(quantile(firstAgent, 0.5))}  ${f(quantile(firstAgent, 0.99))}  ${f(firstAgent.at(-1)!)}`);
  console.log(`from its commit (call returned), all: ${f(quantile(afterCommit, 0.5))}  ${f(quantile(afterCommit, 0.99))}  ${f(afterCommit.at(-1)!)}`);
  console.log(`the revoke call itself (to commit):   ${f(quantile(callMs, 0.5))}  ${f(quantile(callMs, 0.99))}  ${f(callMs.at(-1)!)}`);
} finally {
  await Promise.all(
    procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }),
  );
  await Promise.all([sandbox.stop(), cp.close(), issuer.close()]);
  delete g.__mandateDb;
  await stopBundleListener(t.handle);
  await t.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}
