#!/usr/bin/env node
/**
 * Runs the official MCP conformance suite (server scenarios) against real
 * upstreams directly and through the data-plane agent, for both protocol eras,
 * and prints one table per run: scenario × (direct, through the agent).
 *
 *   DATABASE_URL=postgres://root@127.0.0.1:5432/test node --import ./scripts/conformance-shim.mjs scripts/conformance.mjs
 *   … --run 2026-07-28            one run only (its id, below; repeatable as a comma list)
 *   … --scenario tools-list       one scenario only (in every run that has it)
 *   … --details                   the failing checks of every scenario that fails through the agent
 *   … --markdown                  the tables as Markdown (docs/conformance.md)
 *
 * Runs (docs/conformance.md):
 *   2025-11-25/everything  @modelcontextprotocol/conformance 0.1.16 `server` (handshake era) against
 *                          @modelcontextprotocol/server-everything (the run this script has always made)
 *   2025-11-25/v2          the same suite against sandbox/upstream-v2.ts (official SDK v2, both eras on one /mcp)
 *   2026-07-28/v2          @modelcontextprotocol/conformance 0.2.0-alpha.12 (npm alias conformance-next)
 *                          `server --requirements 2026-07-28` (the stateless era) against sandbox/upstream-v2.ts
 *
 * The rule: a scenario that passes directly passes through the agent, unless
 * EXCEPTIONS below lists it — "denied" (the bundle asks for a denial: the
 * scenario MUST fail through the agent, or the denial does not hold) or "gap"
 * (a known shortfall of the agent, with its reason; it fails the run once it
 * passes, so the list only shrinks). The script exits 1 when the rule is
 * broken, when a run produced no results, or when an exception is stale.
 *
 * Real peers: a fresh database beside DATABASE_URL (local only, dropped at
 * the end; embedded PGlite without it), the control plane's agent API route
 * handlers over node:http (test/agent-proc-harness.ts), catalogues (tools,
 * resources, resource templates, prompts) imported from both upstreams,
 * every entry approved (but the tools DENIED_TOOLS names), tools granted by
 * one scope per server and the rest by one Cedar permit, a signed bundle, the agent
 * (agent/main.ts, in this process) serving both servers on their own paths,
 * an ES256 token issuer with its JWKS over HTTP. The suite has no server auth
 * scenarios, so a small local proxy per server adds `Authorization: Bearer
 * <valid token for that server>` to every request it forwards.
 *
 * Both suite versions call fs.globSync, which Node 20 lacks: it runs as
 * `node --import ./scripts/conformance-shim.mjs …`, which swaps "fs" for
 * those packages' own imports only.
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

const startedAt = Date.now();
const root = fileURLToPath(new URL("..", import.meta.url));
// Every peer of this run is on loopback (the upstreams, the agent, the token proxies): the control
// plane's egress guard refuses loopback unless the operator allows it (docs/operations.md, Egress).
process.env.MANDATE_EGRESS_ALLOW ??= "loopback";
// devDependencies (pinned in package.json), so CI runs the same peers every time.
const EVERYTHING = path.join(root, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const SUITE_2025 = "node_modules/@modelcontextprotocol/conformance/dist/index.js";
const SUITE_2026 = "node_modules/conformance-next/dist/index.js";
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

/** Each run: a suite, its arguments, the upstream it measures, and the agent path that upstream is served at. */
const RUNS = [
  { id: "2025-11-25/everything", title: "2025-11-25 (handshake era), conformance 0.1.16, upstream @modelcontextprotocol/server-everything", suite: SUITE_2025, suiteArgs: [], upstream: "everything" },
  { id: "2025-11-25/v2", title: "2025-11-25 (handshake era), conformance 0.1.16, upstream sandbox/upstream-v2.ts (SDK v2)", suite: SUITE_2025, suiteArgs: [], upstream: "v2" },
  {
    id: "2026-07-28/v2",
    title: "2026-07-28 (stateless era), conformance 0.2.0-alpha.12 --requirements 2026-07-28, upstream sandbox/upstream-v2.ts (SDK v2)",
    suite: SUITE_2026,
    suiteArgs: ["--requirements", "2026-07-28"],
    upstream: "v2",
  },
];
const only = opt("--run")?.split(",");
const runs = only ? RUNS.filter((r) => only.some((o) => r.id === o || r.id.startsWith(`${o}/`))) : RUNS;
if (!runs.length) {
  console.error(`--run: no run named ${opt("--run")}; runs: ${RUNS.map((r) => r.id).join(", ")}`);
  process.exit(2);
}

/** Tools of the SDK v2 upstream the bundle leaves unapproved on purpose, and why: each denial must hold in every era. */
const DENIED_TOOLS = {
  test_image_content: "the bundle leaves test_image_content unapproved (catalogued, never approved), so the agent must deny it in each era",
};

/**
 * Scenarios allowed to pass directly and fail through the agent, per run. kind "denied": the bundle asks for
 * the denial, and the scenario must fail through the agent. kind "gap": a known shortfall of the agent; listed
 * with its reason until it is fixed, and a stale entry (the scenario now passes) fails the run.
 */
const denied = (reason) => ({ kind: "denied", reason });
// No gaps are listed now; a new one is written `{ kind: "gap", reason }`.
const NOT_CATALOGUED = (tool) => denied(`server-everything has no ${tool}: directly its unknown-tool error counts as a pass; the agent denies a tool that is not in the approved catalogue`);
const EXCEPTIONS = {
  "2025-11-25/everything": {
    "tools-call-simple-text": NOT_CATALOGUED("test_simple_text"),
    "tools-call-error": NOT_CATALOGUED("test_error_handling"),
    "resources-subscribe": denied("server-everything has no test://watched-resource: directly it accepts a subscription to any URI; the agent denies a URI that is not in the approved catalogue"),
    "resources-unsubscribe": denied("server-everything has no test://watched-resource: directly it accepts any URI; the agent denies a URI that is not in the approved catalogue"),
  },
  "2025-11-25/v2": {
    "tools-call-image": denied(DENIED_TOOLS.test_image_content),
  },
  "2026-07-28/v2": {
    "tools-call-image": denied(DENIED_TOOLS.test_image_content),
  },
};

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
const { createPolicy, policyInput } = await import("@/lib/policy/service");
const { createServerInput } = await import("@/lib/servers/schemas");
const { createServer: createMcpServer } = await import("@/lib/servers/service");
const { loadConfig } = await import("@/agent/config");
const { startAgent } = await import("@/agent/main");
const { createTestDb, makeTenant, makeUser, uniq } = await import("@/test/db");
const { freePort } = await import("@/test/sandbox");
const { startControlPlane, startIssuer } = await import("@/test/agent-proc-harness");
const { startUpstreamV2 } = await import("@/sandbox/upstream-v2");

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
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
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

/**
 * Runs one suite against `url`; returns scenario → { passed, failed, warnings, errors[] } from its checks.json
 * files, and scenario → reason for the ones the suite reports as not scored (2026-07-28 requirements).
 */
async function runSuite(run, url, label) {
  const outDir = await mkdtemp(path.join(tmpdir(), `mandate-conformance-${label}-`));
  const suiteArgs = ["--import", "./scripts/conformance-shim.mjs", run.suite, "server", "--url", url, "-o", outDir, ...run.suiteArgs];
  if (opt("--scenario")) suiteArgs.push("--scenario", opt("--scenario"));
  const t0 = Date.now();
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
  const notScored = {};
  const tail = log.split(/\nNot scored for [^:]+:[^\n]*\n/)[1] ?? "";
  for (const m of tail.matchAll(/^\s+[✓✗] (\S+) \(([^)]+)\)$/gm)) notScored[m[1]] = m[2];
  return { code, log, results, notScored, ms: Date.now() - t0 };
}

const ok = (r) => Boolean(r) && !r.failed && r.passed > 0;
const cell = (r) =>
  !r
    ? "—"
    : r.passed + r.failed === 0
      ? `no verdict${r.warnings ? ` (${r.warnings}w)` : ""}`
      : `${r.failed ? "FAIL" : "pass"} ${r.passed}/${r.passed + r.failed}${r.warnings ? ` (${r.warnings}w)` : ""}`;

/** Prints one run's table; returns the problems that fail the run. */
function report(run, direct, viaAgent) {
  const problems = [];
  const exceptions = EXCEPTIONS[run.id] ?? {};
  const names = [...new Set([...Object.keys(direct.results), ...Object.keys(viaAgent.results)])];
  const md = args.includes("--markdown");
  console.log(`\n${md ? "### " : ""}${run.title}\n${md ? "\n" : "  "}direct ${(direct.ms / 1000).toFixed(1)} s, through the agent ${(viaAgent.ms / 1000).toFixed(1)} s${md ? "\n" : ""}`);
  if (md) console.log("| scenario | direct | through the agent | note |\n| --- | --- | --- | --- |");
  else console.log(`  ${"scenario".padEnd(46)} ${"direct".padEnd(16)} ${"through the agent".padEnd(18)} note`);
  let bothPass = 0;
  let directPass = 0;
  for (const n of names) {
    const d = direct.results[n];
    const a = viaAgent.results[n];
    const ex = exceptions[n];
    const scored = direct.notScored[n] ?? viaAgent.notScored[n];
    let note = scored ? `not scored (${scored})` : "";
    if (ok(d)) directPass++;
    if (ok(d) && ok(a)) bothPass++;
    if (ex?.kind === "denied") {
      if (ok(a)) problems.push(`${n}: the bundle denies it (${ex.reason}) but it passed through the agent`);
      note = [note, `denied by the bundle: ${ex.reason}`].filter(Boolean).join("; ");
    } else if (ex?.kind === "gap") {
      if (ok(a)) problems.push(`${n}: listed as a known gap (${ex.reason}) but it now passes through the agent; remove it from EXCEPTIONS`);
      else note = [note, `known gap: ${ex.reason}`].filter(Boolean).join("; ");
    } else if (ok(d) && !ok(a)) {
      problems.push(`${n}: passes directly, fails through the agent`);
      note = [note, "← fails only through the agent"].filter(Boolean).join("; ");
    }
    if (md) console.log(`| ${n} | ${cell(d)} | ${cell(a)} | ${note.replace("← ", "")} |`);
    else console.log(`  ${n.padEnd(46)} ${cell(d).padEnd(16)} ${cell(a).padEnd(18)} ${note}`);
  }
  for (const n of Object.keys(exceptions)) if (!names.includes(n) && !opt("--scenario")) problems.push(`${n}: in EXCEPTIONS but the suite did not run it`);
  console.log(`${md ? "\n" : "  "}${names.length} scenarios: ${directPass} pass directly, ${bothPass} of those pass through the agent`);
  if (viaAgent.eras)
    console.log(
      `${md ? "\n" : "  "}requests the agent sent the upstream in that run, by era: ${
        Object.entries(viaAgent.eras)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "none"
      }`,
    );
  if (!Object.keys(direct.results).length) problems.push(`no results directly (suite exit ${direct.code}):\n${direct.log.slice(-2000)}`);
  if (!Object.keys(viaAgent.results).length) problems.push(`no results through the agent (suite exit ${viaAgent.code}):\n${viaAgent.log.slice(-2000)}`);
  if (args.includes("--details")) {
    for (const n of names) {
      const a = viaAgent.results[n];
      if (a && !ok(a)) console.log(`\n  ${n} (through the agent):\n    ${a.errors.join("\n    ") || "(no SUCCESS or FAILURE checks)"}`);
    }
  }
  return problems;
}

const kek = { id: "kek-conformance", key: randomBytes(32) };
const t = await createTestDb();
globalThis.__mandateDb = Promise.resolve(t.handle);
const dataDir = await mkdtemp(path.join(tmpdir(), "mandate-conformance-agent-"));
const cleanups = [];
let exitCode = 0;
try {
  const agentPort = await freePort();
  const wanted = new Set(runs.map((r) => r.upstream));
  const upstreams = {};
  if (wanted.has("everything")) {
    const everything = await startEverything(await freePort());
    cleanups.push(() => everything.stop());
    upstreams.everything = { url: everything.url, path: "/mcp", scope: "everything", name: "server-everything" };
  }
  if (wanted.has("v2")) {
    const v2 = await startUpstreamV2();
    cleanups.push(() => v2.stop());
    upstreams.v2 = { url: v2.url, path: "/v2/mcp", scope: "conformance", name: "sandbox/upstream-v2.ts", requests: v2.requests };
  }
  const [cp, issuer] = await Promise.all([startControlPlane(), startIssuer()]);
  cleanups.push(
    () => cp.close(),
    () => issuer.close(),
  );

  const owner = await makeUser(t.db, { role: "owner" });
  const tenantId = (await makeTenant(t.db, owner.actor)).id;
  const serverIds = [];
  for (const [key, up] of Object.entries(upstreams)) {
    up.resourceUri = `http://127.0.0.1:${agentPort}${up.path}`;
    const server = await createMcpServer(
      owner.ctx,
      createServerInput.parse({
        tenantId,
        name: uniq(`Conformance ${key} `),
        resourceUri: up.resourceUri,
        upstreamUrl: up.url,
        scopes: [up.scope],
        issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
        // The logging scenarios need logging/setLevel and notifications/message through the agent (off by default).
        upstreamLogging: true,
      }),
    );
    await importCatalog(owner.ctx, server.id);
    // Every catalogue entry (tools, resources, resource templates, prompts), approved but DENIED_TOOLS.
    const rows = await t.db.select().from(tools).where(eq(tools.serverId, server.id));
    const kindOf = (r) => r.kind ?? "tool";
    const approved = rows.filter((r) => key !== "v2" || kindOf(r) !== "tool" || !(r.name in DENIED_TOOLS));
    for (const entry of approved) await approveTool(owner.ctx, entry.id, { versionId: entry.latestVersionId });
    // Scopes grant tools; resources, templates, prompts and completion are granted by one Cedar policy.
    await putScopeMapping(owner.ctx, server.id, { baseVersion: 0, mapping: { [up.scope]: approved.filter((r) => kindOf(r) === "tool").map((r) => r.name) } });
    if (rows.some((r) => kindOf(r) !== "tool")) {
      await createPolicy(
        owner.ctx,
        policyInput.parse({
          tenantId,
          serverId: server.id,
          name: uniq("Conformance readers "),
          kind: "cedar",
          cedar: `permit (principal, action in [Action::"list_resources", Action::"list_resource_templates", Action::"read_resource", Action::"list_prompts", Action::"get_prompt", Action::"complete"], resource);`,
        }),
      );
    }
    serverIds.push(server.id);
    const count = (list) =>
      Object.entries(list.reduce((m, r) => ({ ...m, [kindOf(r)]: (m[kindOf(r)] ?? 0) + 1 }), {}))
        .map(([k, n]) => `${n} ${k}`)
        .join(", ") || "nothing";
    const left = rows.filter((r) => !approved.includes(r));
    console.log(
      `catalogue ${up.name}: ${count(rows)} imported, ${count(approved)} approved${left.length ? `, left unapproved: ${left.map((r) => r.name).join(", ")}` : ""}; served by the agent at ${up.path}`,
    );
  }
  const fleet = await createFleet(owner.ctx, { name: uniq("Conformance "), serverIds });
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  const published = await publishBundle(owner.ctx, fleet.id, { note: "conformance" }, kek);
  console.log(`bundle revision ${published.revision}`);

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
  for (const up of Object.values(upstreams)) {
    const token = await issuer.sign({ sub: "conformance", tenant: tenantId, client_id: "conformance-suite", scope: up.scope }, up.resourceUri, "2h");
    const proxy = await startTokenProxy(agent.url, token);
    cleanups.push(() => proxy.close());
    up.viaAgent = `${proxy.url}${up.path}`;
  }
  console.log(`set-up ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);

  const problems = [];
  const excused = { denied: 0, gap: 0 };
  for (const run of runs) {
    const up = upstreams[run.upstream];
    const direct = await runSuite(run, up.url, `${run.id.replace(/\W/g, "-")}-direct`);
    const since = Date.now();
    const viaAgent = await runSuite(run, up.viaAgent, `${run.id.replace(/\W/g, "-")}-agent`);
    // What reached the SDK v2 upstream from the agent during that run, by era (its log keeps the last 1,000 requests).
    if (up.requests) viaAgent.eras = up.requests.filter((r) => r.at >= since).reduce((m, r) => ({ ...m, [r.era]: (m[r.era] ?? 0) + 1 }), {});
    problems.push(...report(run, direct, viaAgent).map((p) => `${run.id} ${p}`));
    for (const [n, ex] of Object.entries(EXCEPTIONS[run.id] ?? {})) if (direct.results[n]) excused[ex.kind]++;
  }
  if (problems.length) {
    console.error(`\nconformance: ${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
    exitCode = 1;
  } else
    console.log(
      `\nconformance: every scenario that passes directly passes through the agent, except ${excused.denied} the bundle denies (the denials hold) and ${excused.gap} known gaps of the agent (listed with their reasons)`,
    );
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
console.log(`conformance: ${((Date.now() - startedAt) / 1000).toFixed(1)} s in all`);
process.exit(exitCode);
