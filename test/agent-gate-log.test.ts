/**
 * Refusals at the agent's gate (no token, a bad token, a bad DPoP proof) have
 * their decision record ("no answer without its audit record"), never carry
 * the token, reach the control plane's log as unattributed records only
 * owners see, and cannot flood the log: repeats are counted per window.
 * Real peers: the sandbox oidc-provider, a real agent with its WAL and
 * shipper, the control plane's ingest and PostgreSQL.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { eq } from "drizzle-orm";

import { decisions } from "@/db/schema";
import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { decisionRecord, GATE_METHOD } from "@/lib/enforcement/decision-record";
import { accessTokenHash } from "@/lib/enforcement/dpop";
import { decisionSearchQuery, getDecision, searchDecisions } from "@/lib/decisions/query";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import { GateLog, sourceOf } from "@/agent/gate-log";
import { Metrics } from "@/agent/metrics";
import { DecisionWal } from "@/agent/wal";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import type { Ctx } from "@/lib/context";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import type { Listening } from "./agent-proc-harness";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { NextRequest } from "next/server";
import * as bundleRoute from "@/app/api/v1/agent/bundle/route";
import * as decisionsRoute from "@/app/api/v1/agent/decisions/route";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as heartbeatRoute from "@/app/api/v1/agent/heartbeat/route";
import { registerClient } from "./auth-server-helpers";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-gate-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const SCOPES = ["tickets:read"];
const WINDOW_MS = 3000;

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let sandbox: Sandbox;
let cp: Listening;
let as: AuthServer;
let agent: RunningAgent;
let dataDir: string;
let tenantId: string;
let serverId: string;
let port: number;
let url: string;

const PING = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "gate-test", version: "1.0.0" } } });
function call(authorization: string | null, dpop?: string, target = url): Promise<Response> {
  const headers = new Headers({ "content-type": "application/json", accept: "application/json, text/event-stream" });
  if (authorization) headers.set("authorization", authorization);
  if (dpop) headers.set("dpop", dpop);
  return fetch(target, { method: "POST", headers, body: PING });
}

/** The control plane's rows of this server's gate refusals. */
async function gateRows() {
  return (await t.db.select().from(decisions).where(eq(decisions.serverId, serverId))).filter((r) => r.method === GATE_METHOD);
}
async function waitFor<T>(what: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(v).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** The agent API routes this test needs, decisions included, over real HTTP. */
function startControlPlane(): Promise<Listening> {
  const routes: Record<string, (req: NextRequest) => Promise<Response>> = {
    "POST /api/v1/agent/enroll": enrollRoute.POST,
    "GET /api/v1/agent/bundle": bundleRoute.GET,
    "POST /api/v1/agent/heartbeat": heartbeatRoute.POST,
    "POST /api/v1/agent/decisions": decisionsRoute.POST,
  };
  const readAll = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  const server = createHttpServer((req, res) => {
    void (async () => {
      const route = routes[`${req.method} ${new URL(req.url ?? "/", "http://127.0.0.1").pathname}`];
      if (!route) return void res.writeHead(404).end();
      const ac = new AbortController();
      res.on("close", () => !res.writableFinished && ac.abort());
      const body = req.method === "GET" ? undefined : new Uint8Array(await readAll(req));
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const out = await route(new NextRequest(`http://127.0.0.1${req.url}`, { method: req.method, headers, body, signal: ac.signal }));
      const h: Record<string, string> = {};
      out.headers.forEach((v, k) => (h[k] = v));
      const buf = Buffer.from(await out.arrayBuffer());
      if (!res.destroyed) res.writeHead(out.status, h).end(buf);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      }),
    ),
  );
}
const search = (ctx: Ctx, q: Record<string, unknown> = {}) => searchDecisions(ctx, decisionSearchQuery.parse({ serverId, limit: 200, ...q }));

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  [sandbox, cp, port] = await Promise.all([startSandbox(), startControlPlane(), freePort()]);
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
  url = `http://127.0.0.1:${port}/gate`;
  as = await startAuthServer({ resources: { [url]: { scopes: SCOPES } }, clientTenant: tenantId });
  const s = await createServer(
    owner.ctx,
    createServerInput.parse({ tenantId, name: uniq("Gate "), resourceUri: url, upstreamUrl: sandbox.url, scopes: SCOPES, issuers: [{ issuer: as.issuer }], dpop: "allowed" }),
  );
  serverId = s!.id;
  const fleet = (await createFleet(owner.ctx, { name: uniq("Gate "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "gate" }, kek);
  dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-gate-"));
  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(port), "--data-dir", dataDir, "--wait", "2", "--name", "gate-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  agent = await startAgent(loaded.config, { log: () => {}, ship: { intervalMs: 100 }, gate: { windowMs: WINDOW_MS } });
  const end = Date.now() + 20_000;
  while ((await fetch(`${agent.url}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error("the agent did not install the bundle");
    await new Promise((r) => setTimeout(r, 50));
  }
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all([sandbox?.stop(), cp?.close(), as?.stop()]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("refusals at the gate of a real agent", () => {
  it("each 401 has a deny record with its reason code, no tenant or user, and no part of the token; owners see them, tenant admins never", async () => {
    // A forged token (right shape, unknown key) and a garbage one.
    const forged = `${Buffer.from(JSON.stringify({ alg: "RS256", typ: "JWT" })).toString("base64url")}.${Buffer.from(JSON.stringify({ iss: as.issuer, sub: "mallory", aud: url })).toString("base64url")}.${randomBytes(64).toString("base64url")}`;
    expect((await call(null)).status).toBe(401);
    expect((await call(`Bearer ${forged}`)).status).toBe(401);
    expect((await call("Basic dXNlcjpwYXNz")).status).toBe(401);
    expect((await fetch(`${url}?access_token=${forged}`, { method: "POST", headers: { "content-type": "application/json" }, body: PING })).status).toBe(401);
    // Before the fix: no decision line at all for any of these.
    const all = await waitFor(gateRows, (r) => r.filter((x) => !x.context?.repeated).length >= 3);
    const rows = all.filter((r) => !r.context?.repeated);
    const codes = rows.map((r) => r.reason.split(":")[0]).sort();
    expect(codes).toEqual(["invalid_request", "invalid_token", "missing_token"]);
    for (const r of all) {
      expect(r).toMatchObject({ outcome: "deny", tenantId: null, userId: null, clientId: null, tool: null });
      expect(r.context?.ip).toBe("127.0.0.1");
      const text = JSON.stringify(r);
      for (const part of forged.split(".")) expect(text).not.toContain(part.slice(0, 16));
      expect(text).not.toContain("dXNlcjpwYXNz");
    }
    const ownerSees = (await search(owner.ctx, { method: GATE_METHOD })).items;
    expect(ownerSees.map((i) => i.id)).toEqual(expect.arrayContaining(rows.map((r) => r.id)));
    expect(ownerSees.every((i) => i.tenantId === null && i.user === null)).toBe(true);
    const detail = await getDecision(owner.ctx, rows[0]!.id);
    expect(detail).toMatchObject({ tenantId: null, claims: { user: null, client: null, ip: "127.0.0.1" }, simulatorUrl: null, policies: [] });
    // A tenant admin of the server's own tenant sees none of them, and their details are 404.
    expect((await search(adminA.ctx, { method: GATE_METHOD })).items).toEqual([]);
    await expectAppError(getDecision(adminA.ctx, rows[0]!.id), "not_found");
  });

  it("a verified token refused for its DPoP proof is recorded under its caller's tenant and user (the tenant admin sees it)", async () => {
    const k = await generateKeyPair("ES256");
    const jwk = await exportJWK(k.publicKey);
    const proof = (htu: string, token?: string) =>
      new SignJWT({ htm: "POST", htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ...(token ? { ath: accessTokenHash(token) } : {}) })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(k.privateKey);
    const client = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_post", tenant: tenantId });
    const res = await fetch(`${as.url}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", dpop: await proof(`${as.url}/token`) },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret!, resource: url, scope: SCOPES.join(" ") }).toString(),
    });
    const token = ((await res.json()) as { access_token: string }).access_token;
    // A proof for another URL: the token verified, the proof did not.
    expect((await call(`DPoP ${token}`, await proof(`${url}/elsewhere`, token))).status).toBe(401);
    const row = await waitFor(
      async () => (await gateRows()).find((r) => r.reason.startsWith("invalid_dpop_proof")),
      (r) => r !== undefined,
    );
    expect(row).toMatchObject({ outcome: "deny", tenantId, clientId: client.client_id });
    expect(row!.userId).toContain(client.client_id);
    expect(JSON.stringify(row)).not.toContain(token.split(".")[2]!.slice(0, 16));
    expect((await search(adminA.ctx, { method: GATE_METHOD })).items.map((i) => i.id)).toEqual([row!.id]);
  });

  it("a flood of 300 unauthenticated requests from one source writes 2 records (the first, then the count), every answer a 401", async () => {
    const missing = async () => (await gateRows()).filter((r) => r.reason.startsWith("missing_token"));
    const counted = (rows: { context: { repeated?: number } | null }[]) => rows.reduce((n, r) => n + (r.context?.repeated ?? 1), 0);
    // A window of its own: wait until the earlier windows' counts were written and shipped.
    await new Promise((r) => setTimeout(r, WINDOW_MS + 1500));
    const before = await missing();
    const statuses = await Promise.all(Array.from({ length: 300 }, () => call(null).then((r) => r.status)));
    expect(new Set(statuses)).toEqual(new Set([401]));
    const after = await waitFor(missing, (r) => counted(r) - counted(before) === 300, WINDOW_MS * 3 + 5000);
    // 300 answers; 2 new records (4 if a window boundary split the burst); one of them counts the repeats.
    expect(after.length - before.length).toBeGreaterThanOrEqual(2);
    expect(after.length - before.length).toBeLessThanOrEqual(4);
    expect(after.some((r) => (r.context?.repeated ?? 0) > 100)).toBe(true);
  }, 30_000);
});

describe("GateLog bounds (a real WAL)", () => {
  async function linesOf(dir: string) {
    const text = await readFile(path.join(dir, "decisions.wal"), "utf8").catch(() => "");
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => decisionRecord.parse(JSON.parse(l)));
  }

  it("10,000 refusals from 10,000 sources in one window write at most 2 × (maxKeys + 1) lines, and every refusal is counted", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-gate-wal-"));
    const wal = new DecisionWal(dir);
    await wal.open();
    const gate = new GateLog({ wal, metrics: new Metrics(), agentId: () => "agt_test", log: () => {} }, { windowMs: 3_600_000, maxKeys: 16 });
    const n = 10_000;
    const waits: Promise<void>[] = [];
    for (let i = 0; i < n; i++)
      waits.push(
        gate.refuse({ serverId: "srv_x", bundleRevision: 1, code: "invalid_token", description: "the access token is malformed", remoteAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }),
      );
    await Promise.all(waits);
    await gate.close();
    await wal.flush();
    const lines = await linesOf(dir);
    expect(lines.length).toBeLessThanOrEqual(2 * (16 + 1));
    expect(lines.reduce((s, l) => s + (l.context?.repeated ?? 1), 0)).toBe(n);
    expect(lines.filter((l) => l.context?.ip === "(many sources)")).toHaveLength(2);
    expect(lines.every((l) => l.tenantId === null && l.user === null && l.outcome === "deny" && l.method === GATE_METHOD)).toBe(true);
    await wal.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("IPv6 sources count per /64; a closed log refuses (the caller answers 503, not 401)", async () => {
    expect(sourceOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(sourceOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-gate-wal-"));
    const wal = new DecisionWal(dir);
    await wal.open();
    const gate = new GateLog({ wal, metrics: new Metrics(), agentId: () => null, log: () => {} }, { windowMs: 3_600_000 });
    await wal.close();
    await expect(gate.refuse({ serverId: "srv_x", bundleRevision: 1, code: "missing_token", description: "no access token was sent", remoteAddress: "192.0.2.1" })).rejects.toThrow(/closed/);
    // The same refusal again: its first record never became durable, so it is not a counted repeat answered at once.
    await expect(gate.refuse({ serverId: "srv_x", bundleRevision: 1, code: "missing_token", description: "no access token was sent", remoteAddress: "192.0.2.1" })).rejects.toThrow(/closed/);
    await gate.close();
    await rm(dir, { recursive: true, force: true });
  });
});
