#!/usr/bin/env node
// Starts Mandate on this machine: builds once if needed, starts the sample
// upstream MCP server and the control plane and, unless MANDATE_DEMO=0, the
// live demo (docs/demo.md): the sandbox authorization server, a seeded demo
// tenant, a local agent enforcing its bundle and a client making a trickle of
// calls. With no DATABASE_URL the control plane uses embedded PGlite in .data/.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";

const port = process.env.PORT ?? "3000";
const host = process.env.HOST ?? "127.0.0.1";
const env = { ...process.env, NEXTAUTH_URL: process.env.NEXTAUTH_URL ?? `http://localhost:${port}`, NEXT_TELEMETRY_DISABLED: "1" };
const dataDir = process.env.MANDATE_DATA_DIR ?? ".data";
const sandbox = process.env.MANDATE_SANDBOX !== "0";
const sandboxPort = process.env.SANDBOX_PORT ?? "3100";
const demoWanted = sandbox && process.env.MANDATE_DEMO !== "0";
const asPort = process.env.DEMO_AS_PORT ?? "3101";
const agentPort = process.env.DEMO_AGENT_PORT ?? "3102";
const loopback = (h) => (h === "0.0.0.0" || h === "::" ? "127.0.0.1" : h);
const upstreamUrl = `http://127.0.0.1:${sandboxPort}/mcp`;
const issuer = `http://127.0.0.1:${asPort}`;
const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
const agentDir = path.join(dataDir, "demo-agent");
// Written by the dashboard when an owner removes the demo: this script then stops the demo's processes.
const removedMarker = path.join(dataDir, "demo-removed");
const t0 = Date.now();

if (!existsSync(".next/BUILD_ID")) {
  console.log("[mandate] first start: building the dashboard (about a minute)…");
  const b = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], { stdio: "inherit", env });
  if (b.status !== 0) process.exit(b.status ?? 1);
}

const children = [];
const demoChildren = [];
const tsx = (script, childEnv, stdio = "inherit", conditions = [], args = []) => spawn(process.execPath, [...conditions, "--import", "tsx", script, ...args], { stdio, env: childEnv });

async function waitFor(url, ms = 60_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

if (sandbox) children.push(tsx("sandbox/upstream.ts", { ...env, PORT: sandboxPort }));

/** Seeds (or finds) the demo before the dashboard opens the database; undefined when there is none to run. */
async function seedDemo() {
  if (!(await waitFor(`http://127.0.0.1:${sandboxPort}/_sandbox/authorization-log`, 30_000))) {
    console.log(`[demo] the sample upstream did not come up on port ${sandboxPort}: starting without the demo`);
    return undefined;
  }
  rmSync(removedMarker, { force: true });
  const enroll = existsSync(path.join(agentDir, "agent-key.json")) ? "0" : "1";
  // react-server: the domain modules are server-only (as in the dashboard's server).
  const seed = tsx(
    "scripts/demo/seed.ts",
    { ...env, DEMO_UPSTREAM_URL: upstreamUrl, DEMO_ISSUER: issuer, DEMO_RESOURCE_URI: resourceUri, DEMO_ENROLL: enroll },
    ["ignore", "pipe", "inherit"],
    ["--conditions=react-server"],
  );
  let out = "";
  seed.stdout.on("data", (d) => (out += d));
  const code = await new Promise((r) => seed.on("exit", r));
  const line = out.split("\n").find((l) => l.startsWith("DEMO_STATE "));
  if (code !== 0 || !line) {
    console.log("[demo] seeding failed (see above): starting without the demo. MANDATE_DEMO=0 turns it off.");
    return undefined;
  }
  const state = JSON.parse(line.slice("DEMO_STATE ".length));
  return state.status === "active" ? state : undefined;
}

const demo = demoWanted ? await seedDemo() : undefined;
// Sandbox client secrets, made up per run: only the sandbox AS and the demo client know them.
const clients = demo && {
  assistant: { id: "demo-assistant", secret: randomBytes(24).toString("base64url") },
  unapproved: { id: "demo-unapproved-tool", secret: randomBytes(24).toString("base64url") },
};
if (demo) {
  const staticClient = (c) => ({
    client_id: c.id,
    client_secret: c.secret,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: "client_secret_basic",
    tenant: demo.tenantId,
  });
  demoChildren.push(
    tsx("sandbox/auth-server.ts", {
      PATH: process.env.PATH,
      PORT: asPort,
      RESOURCES: JSON.stringify({ [resourceUri]: { scopes: ["tickets:read", "tickets:write", "tickets:admin"] } }),
      CLIENTS: JSON.stringify([staticClient(clients.assistant), staticClient(clients.unapproved)]),
    }),
  );
}

const server = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", port, "-H", host], { stdio: "inherit", env });
children.push(server);

console.log(
  `\n  Mandate is starting at ${env.NEXTAUTH_URL}\n  Database: ${process.env.DATABASE_URL ? "PostgreSQL (DATABASE_URL)" : "embedded PGlite in .data/"}\n` +
    `  Sign in with MANDATE_OWNER_EMAIL / MANDATE_OWNER_PASSWORD if you set them; otherwise the first start prints\n` +
    `  a one-time password for owner@mandate.local below.\n` +
    (sandbox ? `  Sample MCP upstream: ${upstreamUrl}\n` : "") +
    (demo ? `  Live demo (sample data, MANDATE_DEMO=0 turns it off): agent at ${resourceUri}, sandbox authorization server at ${issuer};\n  see "Connect a client" in the dashboard.\n` : ""),
);

async function startDemoProcesses() {
  const cp = `http://${loopback(host)}:${port}`;
  if (!(await waitFor(`${cp}/login`, 120_000))) return console.log("[demo] the dashboard did not come up: demo agent not started");
  // The agent gets only what it needs: never the control plane's secrets.
  const agentEnv = { PATH: process.env.PATH, MANDATE_BUNDLE_KEYS: JSON.stringify(demo.keys), ...(demo.enrollmentToken ? { MANDATE_ENROLLMENT_TOKEN: demo.enrollmentToken } : {}) };
  const agentArgs = ["--control-plane", cp, "--port", agentPort, "--data-dir", agentDir, "--name", "demo-agent", "--wait", "20"];
  demoChildren.push(tsx("agent/main.ts", agentEnv, "inherit", [], agentArgs).on("exit", (c) => c && console.log(`[demo] agent exited (${c})`)));
  if (!(await waitFor(`http://127.0.0.1:${agentPort}/.well-known/oauth-protected-resource/mcp`, 60_000))) return console.log("[demo] the demo agent did not come up: demo client not started");
  demoChildren.push(
    tsx("scripts/demo/client.ts", {
      PATH: process.env.PATH,
      DEMO_MCP_URL: resourceUri,
      DEMO_ISSUER: issuer,
      DEMO_CLIENT_ID: clients.assistant.id,
      DEMO_CLIENT_SECRET: clients.assistant.secret,
      DEMO_UNAPPROVED_CLIENT_ID: clients.unapproved.id,
      DEMO_UNAPPROVED_CLIENT_SECRET: clients.unapproved.secret,
      ...(process.env.DEMO_INTERVAL_MS ? { DEMO_INTERVAL_MS: process.env.DEMO_INTERVAL_MS } : {}),
      ...(process.env.DEMO_VERBOSE ? { DEMO_VERBOSE: "1" } : {}),
    }),
  );
  console.log(`[demo] agent and client running ${Math.round((Date.now() - t0) / 1000)} s after start`);
  const watch = setInterval(() => {
    if (!existsSync(removedMarker)) return;
    clearInterval(watch);
    rmSync(removedMarker, { force: true });
    console.log("[demo] the demo was removed: stopping its client, agent and authorization server");
    demoChildren.forEach((c) => c.kill("SIGTERM"));
  }, 1000);
  watch.unref();
}
if (demo) void startDemoProcesses();

const stop = () => [...demoChildren, ...children].forEach((c) => c.kill("SIGTERM"));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
server.on("exit", (code) => {
  stop();
  process.exit(code ?? 0);
});
