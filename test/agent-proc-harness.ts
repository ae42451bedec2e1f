/**
 * Real peers for the data-plane agent tests: the control plane's agent API
 * route handlers behind a tiny node:http adapter (against the test
 * database), and a JWKS server plus signer standing in for an authorization
 * server's keys (the tokens are real ES256 JWTs checked by the real
 * TokenValidator).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { eq } from "drizzle-orm";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { NextRequest } from "next/server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { loadConfig, type AgentConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import type { TracingConfig } from "@/agent/tracing";
import type { DecisionRecord } from "@/agent/wal";
import { servers, tools } from "@/db/schema";
import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { getEnv } from "@/lib/env";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import type { RequestLogLine } from "@/sandbox/upstream";
import * as approvalsRoute from "@/app/api/v1/agent/approvals/route";
import * as bundleRoute from "@/app/api/v1/agent/bundle/route";
import * as credentialsRoute from "@/app/api/v1/agent/credentials/route";
import * as connectionTokenRoute from "@/app/api/v1/agent/connections/token/route";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as heartbeatRoute from "@/app/api/v1/agent/heartbeat/route";

type Handler = (req: NextRequest) => Promise<Response>;
const routes: Record<string, Handler> = {
  "POST /api/v1/agent/enroll": enrollRoute.POST,
  "GET /api/v1/agent/bundle": bundleRoute.GET,
  "POST /api/v1/agent/heartbeat": heartbeatRoute.POST,
  "POST /api/v1/agent/credentials": credentialsRoute.POST,
  "POST /api/v1/agent/approvals": approvalsRoute.POST,
  "POST /api/v1/agent/connections/token": connectionTokenRoute.POST,
};

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface Listening {
  url: string;
  close(): Promise<void>;
}

function listen(server: Server): Promise<Listening> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** The agent API of the control plane, served over real HTTP. */
export function startControlPlane(): Promise<Listening> {
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const route = routes[`${req.method} ${url.pathname}`];
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
  return listen(server);
}

export interface Issuer extends Listening {
  issuer: string;
  jwksUri: string;
  sign(claims: Record<string, unknown>, aud: string, expiresIn?: string): Promise<string>;
}

/** An issuer's signing key with its JWKS served over HTTP. */
export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "ES256", use: "sig" };
  const server = createHttpServer((req, res) => {
    if (req.url === "/jwks") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
    res.writeHead(404).end();
  });
  const l = await listen(server);
  return {
    ...l,
    // As the server registry stores it (normalized, with the trailing slash).
    issuer: `${l.url}/`,
    jwksUri: `${l.url}/jwks`,
    sign: (claims, aud, expiresIn = "10m") =>
      new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "test-key", typ: "at+jwt" }).setIssuer(`${l.url}/`).setAudience(aud).setIssuedAt().setExpirationTime(expiresIn).sign(privateKey),
  };
}

// ---------------------------------------------------------------- a whole stack for vault, client and masking tests

/** What the sandbox upstream logged for one request (the agent's own catalogue check has client "mandate-catalog"). */
export type SandboxRequest = RequestLogLine;

export interface AgentStack {
  t: TestDb;
  owner: MadeUser;
  kek: Kek;
  sandbox: Sandbox;
  cp: Listening;
  issuer: Issuer;
  agent: RunningAgent;
  config: AgentConfig;
  dataDir: string;
  /** Owner of the server. */
  tenantA: string;
  /** A second tenant allowed on the server. */
  tenantB: string;
  serverId: string;
  fleetId: string;
  resourceUri: string;
  /** A token of `tenant` (default A) from the test issuer, for the server. */
  token(scope: string, claims?: Record<string, unknown>): Promise<string>;
  /** An MCP SDK client connected through the agent with this bearer token. */
  connect(bearer: string): Promise<Client>;
  /** One raw JSON-RPC POST to the agent. */
  rpc(body: unknown, headers?: Record<string, string>): Promise<Response>;
  /** What the upstream received, per request. */
  upstreamLog(): Promise<SandboxRequest[]>;
  /** The upstream requires one of these keys in `header` (empty: open). */
  setApiKeys(keys: string[], header?: string): Promise<void>;
  /** Decision records still in the agent's data dir. */
  walLines(): Promise<DecisionRecord[]>;
  /** Waits until the agent enforces a bundle revision at least `revision`. */
  waitRevision(revision: number): Promise<void>;
  /** Points the server at this upstream URL, publishes, and waits until the agent enforces that bundle. */
  useUpstream(url: string, note: string): Promise<void>;
  /** The sandbox's tool definitions (the approved ones), as its tools/list answer holds them. */
  sandboxTools(): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A hand-written test upstream's handshake: answers `server/discover` (offering `versions`) and
 * `initialize` (the client's version, upstream session "up-session") as `name`; false for any other
 * method (the test's own answers).
 */
export function answerHandshake(res: ServerResponse, m: { id?: unknown; method: string; params?: { protocolVersion?: string } }, name: string, versions: string[]): boolean {
  const serverInfo = { name, version: "1" };
  if (m.method === "server/discover") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ result: { supportedVersions: versions, capabilities: { tools: {} }, serverInfo }, jsonrpc: "2.0", id: m.id }));
    return true;
  }
  if (m.method === "initialize") {
    res
      .writeHead(200, { "content-type": "application/json", "mcp-session-id": "up-session" })
      .end(JSON.stringify({ result: { protocolVersion: m.params?.protocolVersion, capabilities: { tools: {} }, serverInfo }, jsonrpc: "2.0", id: m.id }));
    return true;
  }
  return false;
}

/**
 * Test database, sandbox upstream (tools imported and approved, read and
 * write scopes mapped), the control plane's agent API, a test issuer, a
 * server owned by tenant A and shared with tenant B (plus `extraTenants`),
 * a fleet with its first bundle published, and a real agent enforcing it.
 */
export async function startAgentStack(opts: { extraIssuers?: Record<string, unknown>[]; extraTenants?: number; tracing?: TracingConfig } = {}): Promise<AgentStack & { extraTenantIds: string[] }> {
  // The routes read the key-encryption key from the environment: the same one the services get here.
  process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
  process.env.MANDATE_KEK_ID ??= "kek-test";
  process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64");
  const kek: Kek = { id: getEnv().kek.id, key: getEnv().kek.key };
  const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
  const t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  const owner = await makeUser(t.db, { role: "owner" });
  const [sandbox, cp, issuer, port] = await Promise.all([startSandbox(), startControlPlane(), startIssuer(), freePort()]);
  const resourceUri = `http://127.0.0.1:${port}/mcp`;
  const tenantA = (await makeTenant(t.db, owner.actor)).id;
  const tenantB = (await makeTenant(t.db, owner.actor)).id;
  const extraTenantIds: string[] = [];
  for (let i = 0; i < (opts.extraTenants ?? 0); i++) extraTenantIds.push((await makeTenant(t.db, owner.actor)).id);
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId: tenantA,
      name: uniq("Tickets "),
      resourceUri,
      upstreamUrl: sandbox.url,
      scopes: ["tickets:read", "tickets:write"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }, ...(opts.extraIssuers ?? [])],
      tenantIds: [tenantB, ...extraTenantIds],
    }),
  );
  const serverId = server!.id;
  await importCatalog(owner.ctx, serverId);
  for (const tool of await t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  const fleetId = (await createFleet(owner.ctx, { name: uniq("Edge "), serverIds: [serverId] }))!.id;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleetId);
  await publishBundle(owner.ctx, fleetId, { note: "first" }, kek);
  const dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-"));
  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(port), "--data-dir", dataDir, "--wait", "20", "--name", "vault-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  const config = loaded.config;
  const agent = await startAgent(config, { log: process.env.AGENT_TEST_LOG ? (m) => console.log(`[agent] ${m}`) : () => {}, driftCheckMs: 3_600_000, tracing: opts.tracing });
  await until(() => agent.sync.current !== null);
  const base = `http://127.0.0.1:${port}`;
  return {
    t,
    owner,
    kek,
    sandbox,
    cp,
    issuer,
    agent,
    config,
    dataDir,
    tenantA,
    tenantB,
    extraTenantIds,
    serverId,
    fleetId,
    resourceUri,
    token: (scope, claims = {}) => issuer.sign({ sub: "alice", tenant: tenantA, client_id: "test-client", scope, ...claims }, resourceUri),
    async connect(bearer) {
      const client = new Client({ name: "vault-test", version: "1.0.0" });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
      return client;
    },
    rpc: (body, headers = {}) =>
      fetch(`${base}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) }),
    async upstreamLog() {
      return ((await (await fetch(`${sandbox.base}/_sandbox/authorization-log`)).json()) as { requests: SandboxRequest[] }).requests;
    },
    async setApiKeys(keys, header = "x-api-key") {
      const res = await fetch(`${sandbox.base}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header, keys }) });
      if (!res.ok) throw new Error(`sandbox api-keys: ${res.status}`);
    },
    async walLines() {
      const files = (await readdir(dataDir)).filter((f) => /^decisions-\d+\.sealed$/.test(f)).sort();
      const text = (await Promise.all([...files, "decisions.wal"].map((f) => readFile(path.join(dataDir, f), "utf8").catch(() => "")))).join("");
      return text
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as DecisionRecord);
    },
    waitRevision: (revision) => until(() => (agent.sync.current?.content.manifest.revision ?? 0) >= revision),
    async useUpstream(url, note) {
      const rev = agent.sync.current!.content.manifest.revision;
      await t.db.update(servers).set({ upstreamUrl: url }).where(eq(servers.id, serverId));
      await publishBundle(owner.ctx, fleetId, { note }, kek);
      await until(() => (agent.sync.current?.content.manifest.revision ?? 0) >= rev + 1);
    },
    async sandboxTools() {
      const post = async (body: unknown, headers: Record<string, string> = {}) => {
        const res = await fetch(sandbox.url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
          body: JSON.stringify(body),
        });
        const text = await res.text();
        const data = text.split("\n").filter((l) => l.startsWith("data:"));
        return { res, m: (text ? JSON.parse(data.length ? data.at(-1)!.slice(5) : text) : null) as Record<string, unknown> | null };
      };
      const init = await post({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
      const sid = init.res.headers.get("mcp-session-id");
      const h: Record<string, string> = sid ? { "mcp-session-id": sid } : {};
      await post({ jsonrpc: "2.0", method: "notifications/initialized" }, h);
      return ((await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, h)).m!.result as { tools: Record<string, unknown>[] }).tools;
    },
    async stop() {
      await agent.stop();
      await Promise.all([sandbox.stop(), cp.close(), issuer.close()]);
      delete g.__mandateDb;
      await stopBundleListener(t.handle);
      await t.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
