#!/usr/bin/env node
// Publish → long-poll latency: 50 enrolled agents hold GET /api/v1/agent/bundle
// long polls; the owner publishes 100 times; each agent's answer time is
// measured from the moment the publish request returned (and from when it was
// sent). Needs a production build; uses PostgreSQL when DATABASE_URL is set.
import { appEnv, freePort, freshDatabase, ownerApiToken, startApp, waitFor } from "../scripts/harness.mjs";

const AGENTS = Number(process.env.AGENTS ?? 50);
const PUBLISHES = Number(process.env.PUBLISHES ?? 100);

const port = await freePort();
const db = await freshDatabase("longpoll");
const env = appEnv(port, db.env);
const base = env.NEXTAUTH_URL;
const app = startApp(port, env, ["ignore", "ignore", "inherit"]);

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  await waitFor(`${base}/login`);
  const token = await ownerApiToken(base, env.MANDATE_OWNER_EMAIL, env.MANDATE_OWNER_PASSWORD);
  const call = async (method, path, body, headers = {}) => {
    const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers }, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    if (r.status >= 400) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const tenant = await call("POST", "/api/v1/admin/tenants", { name: "Bench" });
  const server = await call("POST", "/api/v1/admin/servers", {
    tenantId: tenant.id,
    name: "bench",
    resourceUri: "https://mcp.bench.example/t",
    upstreamUrl: "http://127.0.0.1:9/mcp",
    scopes: ["read"],
  });
  await call("POST", `/api/v1/admin/servers/${server.id}/tools`, { name: "list_things", inputSchema: { type: "object" } });
  await call("PUT", `/api/v1/admin/servers/${server.id}/scopes`, { baseVersion: 0, mapping: { read: ["list_things"] } });
  const fleet = await call("POST", "/api/v1/admin/fleets", { name: "bench", serverIds: [server.id] });
  const agents = [];
  for (let i = 0; i < AGENTS; i++) {
    const { token: enrollment } = await call("POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, {});
    const r = await fetch(`${base}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment, name: `agent-${i}`, version: "bench" }),
    });
    agents.push((await r.json()).agentKey);
  }
  await call("POST", `/api/v1/admin/fleets/${fleet.id}/bundles`, { note: "first" });
  const etags = new Map();
  for (const key of agents) {
    const r = await fetch(`${base}/api/v1/agent/bundle`, { headers: { authorization: `Bearer ${key}` } });
    etags.set(key, r.headers.get("etag"));
    await r.arrayBuffer();
  }

  const afterAnswer = [];
  const afterRequest = [];
  for (let p = 0; p < PUBLISHES; p++) {
    const polls = agents.map(async (key) => {
      const r = await fetch(`${base}/api/v1/agent/bundle?wait=30`, { headers: { authorization: `Bearer ${key}`, "if-none-match": etags.get(key) } });
      const at = performance.now();
      if (r.status !== 200) throw new Error(`long poll answered ${r.status}`);
      etags.set(key, r.headers.get("etag"));
      await r.arrayBuffer();
      return at;
    });
    await new Promise((r) => setTimeout(r, 150)); // let every poll reach the server and subscribe
    const sent = performance.now();
    await call("POST", `/api/v1/admin/fleets/${fleet.id}/bundles`, { note: `bench ${p}` });
    const answered = performance.now();
    for (const at of await Promise.all(polls)) {
      afterAnswer.push(Math.max(0, at - answered));
      afterRequest.push(at - sent);
    }
  }
  console.log(`${AGENTS} waiting agents × ${PUBLISHES} publishes (${db.env.DATABASE_URL ? "PostgreSQL" : "PGlite"}):`);
  console.log(`  publish response → long-poll answer: p50 ${pct(afterAnswer, 50).toFixed(1)} ms, p99 ${pct(afterAnswer, 99).toFixed(1)} ms`);
  console.log(`  publish request sent → long-poll answer (includes compile + sign): p50 ${pct(afterRequest, 50).toFixed(1)} ms, p99 ${pct(afterRequest, 99).toFixed(1)} ms`);
} finally {
  app.kill("SIGTERM");
  await db.cleanup();
}
