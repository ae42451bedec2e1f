#!/usr/bin/env node
/**
 * Runs the official MCP conformance suite (@modelcontextprotocol/conformance,
 * server scenarios) against the data-plane agent fronting
 * @modelcontextprotocol/server-everything, and against that upstream
 * directly as the baseline, then prints both side by side.
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/test node scripts/conformance.mjs
 *   … --scenario tools-list          one scenario only
 *   … --suite all                    every scenario, pending ones included
 *
 * Real peers: a fresh database beside DATABASE_URL (local only, dropped at
 * the end; embedded PGlite without it), the control plane's agent API route handlers over node:http
 * (test/agent-proc-harness.ts), a catalogue imported from the upstream with
 * every tool approved and granted by one scope, a signed bundle, the agent
 * (agent/main.ts, in this process), an ES256 token issuer with its JWKS over
 * HTTP. The suite has no server auth scenarios, so a small local proxy adds
 * `Authorization: Bearer <valid token>` to every request it forwards.
 *
 * The suite calls fs.globSync, which Node 20 lacks: it runs as
 * `node --import ./scripts/conformance-shim.mjs …`, which swaps "fs" for that
 * package's own imports only.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { register } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { register as registerTsx } from "tsx/esm/api";

const root = fileURLToPath(new URL("..", import.meta.url));
// Every peer of this run is on loopback (the upstream, the agent, the token proxy): the control
// plane's egress guard refuses loopback unless the operator allows it (docs/operations.md, Egress).
process.env.MANDATE_EGRESS_ALLOW ??= "loopback";
// A devDependency (pinned in package.json), so CI runs the same upstream every time.
const EVERYTHING = path.join(root, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const SCOPE = "everything";
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
// Scenarios that must pass through the agent (it fails the run otherwise). The
// others fail for reasons listed in docs/agent.md: server-everything lacks the
// suite's test_* tools and prompts, and the agent denies methods its bundle
// does not cover (resources/*, prompts/*, logging/*, completion/*).
const REQUIRED = (opt("--require") ?? "server-initialize,ping,tools-list,server-sse-multiple-streams,dns-rebinding-protection").split(",").filter(Boolean);

// TypeScript project modules (tsconfig paths included); Next.js' "server-only" marker resolves to an empty module here.
registerTsx();
register(`data:text/javascript,${encodeURIComponent(`export async function resolve(s, c, n) { return s === "server-only" ? { url: "data:text/javascript,", shortCircuit: true } : n(s, c); }`)}`);

const { eq } = await import("drizzle-orm");
const { tools } = await import("@/db/schema");
const { stopBundleListener } = await import("@/lib/agents/bundle-waiter");
const { publishBundle } = await import("@/lib/bundles/service");
const { activeSigningKey, publicKeys } = await import("@/lib/bundles/signing");
const { approveTool, importCatalog } = await import("@/lib/catalog/service");
const { createEnrollmentToken, createFleet } = await import("@/lib/fleets/service");
const { putScopeMapping } = await import("@/lib/scopes/service");
const { createServerInput } = await import("@/lib/servers/schemas");
const { createServer: createMcpServer } = await import("@/lib/servers/service");
const { loadConfig } = await import("@/agent/config");
const { startAgent } = await import("@/agent/main");
const { createTestDb, makeTenant, makeUser, uniq } = await import("@/test/db");
const { freePort } = await import("@/test/sandbox");
const { startControlPlane, startIssuer } = await import("@/test/agent-proc-harness");

/** server-everything over Streamable HTTP, in its own process group (so the pid we stop is the server's). */
async function startEverything(port) {
  const child = spawn(process.execPath, [EVERYTHING, "streamableHttp"], { cwd: tmpdir(), env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything did not start in 120 s:\n${out}`)), 120_000);
    const onData = (d) => {
      out += d.toString();
      if (/listening on port/i.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited (${code}):\n${out}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          resolve();
        }
      }),
  };
}

/** Forwards every request to `target`, adding the bearer token; streams both ways (SSE included). */
async function startTokenProxy(target, token) {
  const t = new URL(target);
  const port = await freePort();
  const self = `127.0.0.1:${port}`;
  const server = createServer((req, res) => {
    // As a reverse proxy configured for the agent would: its own Host / Origin become the agent's; any other passes as is.
    const headers = { ...req.headers, authorization: `Bearer ${token}` };
    if (headers.host === self) headers.host = t.host;
    if (headers.origin === `http://${self}`) headers.origin = t.origin;
    const up = httpRequest(
      { host: t.hostname, port: t.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Runs the suite against `url`; returns scenario → { passed, failed, warnings, errors[] } from its checks.json files. */
async function runSuite(url, label) {
  const outDir = await mkdtemp(path.join(tmpdir(), `mandate-conformance-${label}-`));
  const suiteArgs = ["--import", "./scripts/conformance-shim.mjs", "node_modules/@modelcontextprotocol/conformance/dist/index.js", "server", "--url", url, "-o", outDir];
  if (opt("--scenario")) suiteArgs.push("--scenario", opt("--scenario"));
  if (opt("--suite")) suiteArgs.push("--suite", opt("--suite"));
  const child = spawn(process.execPath, suiteArgs, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const code = await new Promise((resolve) => child.once("exit", resolve));
  const results = {};
  for (const dir of await readdir(outDir)) {
    const scenario = dir.replace(/^server-/, "").replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, "");
    let checks;
    try {
      checks = JSON.parse(await readFile(path.join(outDir, dir, "checks.json"), "utf8"));
    } catch {
      continue;
    }
    results[scenario] = {
      passed: checks.filter((c) => c.status === "SUCCESS").length,
      failed: checks.filter((c) => c.status === "FAILURE").length,
      warnings: checks.filter((c) => c.status === "WARNING").length,
      errors: checks.filter((c) => c.status === "FAILURE" || c.status === "WARNING").map((c) => `${c.status} ${c.id}: ${String(c.errorMessage ?? c.details?.message ?? "").slice(0, 200)}`),
    };
  }
  await rm(outDir, { recursive: true, force: true });
  return { code, log, results };
}

const kek = { id: "kek-conformance", key: randomBytes(32) };
const t = await createTestDb();
globalThis.__mandateDb = Promise.resolve(t.handle);
const dataDir = await mkdtemp(path.join(tmpdir(), "mandate-conformance-agent-"));
const cleanups = [];
let exitCode = 0;
try {
  const [evPort, agentPort] = [await freePort(), await freePort()];
  const everything = await startEverything(evPort);
  cleanups.push(() => everything.stop());
  const [cp, issuer] = await Promise.all([startControlPlane(), startIssuer()]);
  cleanups.push(() => cp.close(), () => issuer.close());

  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const server = await createMcpServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Everything "),
      resourceUri,
      upstreamUrl: everything.url,
      scopes: [SCOPE],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const imported = await importCatalog(owner.ctx, server.id);
  const rows = await t.db.select().from(tools).where(eq(tools.serverId, server.id));
  for (const tool of rows) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, server.id, { baseVersion: 0, mapping: { [SCOPE]: rows.map((r) => r.name) } });
  const fleet = await createFleet(owner.ctx, { name: uniq("Conformance "), serverIds: [server.id] });
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  const published = await publishBundle(owner.ctx, fleet.id, { note: "conformance" }, kek);
  console.log(`catalogue: ${imported.added.length} tools imported from server-everything and approved (${rows.map((r) => r.name).join(", ")}); bundle revision ${published.revision}`);

  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(agentPort), "--data-dir", dataDir, "--wait", "5", "--name", "conformance-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  const agentLog = [];
  const agent = await startAgent(loaded.config, { log: (m) => agentLog.push(m) });
  cleanups.push(() => agent.stop());
  const until = Date.now() + 30_000;
  while ((await fetch(`${agent.url}/readyz`)).status !== 200) {
    if (Date.now() > until) throw new Error(`the agent did not install the bundle:\n${agentLog.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = await issuer.sign({ sub: "conformance", tenant: tenantId, client_id: "conformance-suite", scope: SCOPE }, resourceUri, "2h");
  const proxy = await startTokenProxy(agent.url, token);
  cleanups.push(() => proxy.close());

  const direct = await runSuite(everything.url, "direct");
  const viaAgent = await runSuite(`${proxy.url}/mcp`, "agent");
  if (!Object.keys(viaAgent.results).length) {
    console.error(`the suite produced no results (exit ${viaAgent.code}):\n${viaAgent.log.slice(-3000)}`);
    exitCode = 1;
  }

  const names = [...new Set([...Object.keys(direct.results), ...Object.keys(viaAgent.results)])];
  const ok = (r) => r && !r.failed && r.passed > 0;
  const cell = (r) => (!r ? "—" : r.passed + r.failed === 0 ? `no verdict${r.warnings ? ` (${r.warnings}w)` : ""}` : `${r.failed ? "FAIL" : "pass"} ${r.passed}/${r.passed + r.failed}${r.warnings ? ` (${r.warnings}w)` : ""}`);
  console.log(`\nMCP conformance (@modelcontextprotocol/conformance, server scenarios${opt("--suite") ? `, suite ${opt("--suite")}` : ""})`);
  console.log(`${"scenario".padEnd(32)} ${"server-everything".padEnd(18)} ${"through the agent".padEnd(18)}`);
  let pass = 0;
  let regressions = 0;
  for (const n of names) {
    const d = direct.results[n];
    const a = viaAgent.results[n];
    if (ok(a)) pass++;
    const regressed = ok(d) && !ok(a);
    if (regressed) regressions++;
    console.log(`${n.padEnd(32)} ${cell(d).padEnd(18)} ${cell(a).padEnd(18)}${regressed ? " ← fails only through the agent" : ""}`);
  }
  console.log(`\nthrough the agent: ${pass}/${names.length} scenarios pass; ${regressions} pass directly but fail through the agent`);
  const missing = REQUIRED.filter((n) => !ok(viaAgent.results[n]));
  if (missing.length) {
    console.error(`required scenarios failed through the agent: ${missing.join(", ")}`);
    exitCode = 1;
  } else console.log(`required scenarios pass through the agent: ${REQUIRED.join(", ")}`);
  if (args.includes("--details")) {
    for (const n of names) {
      const a = viaAgent.results[n];
      if (a && !ok(a)) console.log(`\n${n} (agent):\n  ${a.errors.join("\n  ") || "(no SUCCESS or FAILURE checks)"}`);
    }
  }
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  delete globalThis.__mandateDb;
  await stopBundleListener(t.handle).catch(() => {});
  await t.close();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
