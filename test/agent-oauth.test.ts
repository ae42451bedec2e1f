/**
 * The agent as an OAuth-protected MCP server, end to end with real peers and
 * no mocks: the control plane's agent API (route handlers over HTTP, test
 * database, a signed bundle), the sandbox upstream, a real OAuth 2.1
 * authorization server (oidc-provider: DCR, PKCE, resource indicators, JWT
 * access tokens with aud = resource) trusted by the server, and the official
 * MCP SDK client running its own OAuth flow (MCP authorization 2025-11-25).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq, sql } from "drizzle-orm";
import { base64url, SignJWT } from "jose";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

import { bundles, fleets, servers, tools } from "@/db/schema";
import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { BUNDLE_CHANNEL, getBundle, listBundles, publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, signPayload, type Kek } from "@/lib/bundles/signing";
import { contentHash } from "@/lib/enforcement/bundle";
import { qualifiedUser } from "@/lib/enforcement/token";
import { newId } from "@/lib/ids";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import { startControlPlane, type Listening } from "./agent-proc-harness";
import { clientCredentialsToken, followToRedirect, registerClient } from "./auth-server-helpers";

const kek: Kek = { id: "kek-oauth-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const quiet = () => {};
const getActive = async () => ({ revision: (await listBundles(owner.ctx, fleetId)).activeRevision! });
const SCOPES = ["tickets:read", "tickets:write"];

let t: TestDb;
let owner: MadeUser;
let sandbox: Sandbox;
let cp_: Listening;
let as: AuthServer;
let agent: RunningAgent;
let dataDir: string;
let tenantId: string;
let agentPort: number;
/** The canonical resource URI: exactly the URL the clients use. */
let resourceUri: string;
/** Another server fronted by the same agent (same issuer, another resource). */
let otherResourceUri: string;
/** What the registry stored as the issuer identifier, before the workaround below. */
let registryIssuer: string;
let fleetId: string;
let mainServerId: string;
/** Every access token a client sent, for the pass-through canary. */
const usedTokens = new Set<string>();

const prmUrl = () => `http://127.0.0.1:${agentPort}/.well-known/oauth-protected-resource/mcp`;
const challengeBase = () => `Bearer resource_metadata="${prmUrl()}", scope="${SCOPES.join(" ")}"`;

/** A fetch for the SDK that remembers every bearer token it sends (for the pass-through canary). */
const recordingFetch: typeof fetch = (input, init) => {
  const h = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  const auth = h.get("authorization");
  if (auth?.startsWith("Bearer ")) usedTokens.add(auth.slice(7));
  return fetch(input, init);
};

const rpc = (bearer: string | null, body: unknown = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "list_tickets", arguments: {} } }, url = resourceUri) => {
  if (bearer) usedTokens.add(bearer);
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
};

/**
 * A headless OAuthClientProvider: DCR metadata for a public client, and
 * `redirectToAuthorization` that follows the AS's redirects (cookies kept)
 * to the redirect URI and keeps the code, as a browser and a callback would.
 */
class HeadlessProvider implements OAuthClientProvider {
  info?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier?: string;
  authorizationUrl?: URL;
  code?: string;
  constructor(readonly redirectUrl: string) {}
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: "mandate headless test",
      redirect_uris: [this.redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.info = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  saveCodeVerifier(v: string) {
    this.verifier = v;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error("no code verifier");
    return this.verifier;
  }
  async redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
    const back = await followToRedirect(url.href, this.redirectUrl);
    if (back.searchParams.get("error")) throw new Error(`authorization failed: ${back.searchParams.get("error")} ${back.searchParams.get("error_description")}`);
    if (back.searchParams.get("state") !== url.searchParams.get("state")) throw new Error("state mismatch");
    this.code = back.searchParams.get("code") ?? undefined;
  }
}

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  // The agent's port comes first: the canonical resource URI names it.
  [sandbox, cp_, agentPort] = await Promise.all([startSandbox(), startControlPlane(), freePort()]);
  resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  otherResourceUri = `http://127.0.0.1:${agentPort}/other`;
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  as = await startAuthServer({
    resources: { [resourceUri]: { scopes: SCOPES }, [otherResourceUri]: { scopes: ["other:read"] } },
    users: { alice: { tenant: tenantId, groups: ["engineering"] } },
    clientTenant: tenantId,
  });

  const mk = async (name: string, uri: string, scopes: string[]) =>
    (await createServer(owner.ctx, createServerInput.parse({ tenantId, name: uniq(name), resourceUri: uri, upstreamUrl: sandbox.url, scopes, issuers: [{ issuer: as.issuer }] })))!.id;
  const serverId = await mk("Tickets ", resourceUri, SCOPES);
  const otherId = await mk("Other ", otherResourceUri, ["other:read"]);

  const [row] = await t.db.select().from(servers).where(eq(servers.id, serverId));
  registryIssuer = row!.issuers[0]!.issuer;

  await importCatalog(owner.ctx, serverId);
  for (const tool of await t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  const fleet = (await createFleet(owner.ctx, { name: uniq("OAuth edge "), serverIds: [serverId, otherId] }))!;
  fleetId = fleet.id;
  mainServerId = serverId;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "oauth" }, kek);

  dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-oauth-"));
  const loaded = loadConfig(["--control-plane", cp_.url, "--enrollment-token", enrollment.token, "--port", String(agentPort), "--data-dir", dataDir, "--wait", "2", "--name", "oauth-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  agent = await startAgent(loaded.config, { log: quiet });
  const end = Date.now() + 20_000;
  while ((await fetch(`${agent.url}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error("the agent did not install the bundle");
    await new Promise((r) => setTimeout(r, 50));
  }
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all([sandbox?.stop(), cp_?.close(), as?.stop()]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("agent + real authorization server", () => {
  it("the registry keeps an origin-only issuer identifier exactly as the AS spells it", () => {
    expect(registryIssuer).toBe(as.issuer);
  });

  it("SDK client with no prior configuration: 401 → PRM → AS metadata → DCR → code + PKCE with resource → tools", async () => {
    const redirect = `http://127.0.0.1:${await freePort()}/callback`;
    const provider = new HeadlessProvider(redirect);
    const url = new URL(resourceUri);
    const first = new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: recordingFetch });
    const client = new Client({ name: "oauth-test", version: "1.0.0" });
    const err = await client.connect(first).catch((e: unknown) => e);
    expect(err, String(err)).toBeInstanceOf(UnauthorizedError);

    // Registered by DCR (asking for the challenge's scopes), sent through the authorization endpoint with PKCE and the resource indicator.
    expect(provider.info?.client_id).toBeTruthy();
    expect((provider.info as { scope?: string } | undefined)?.scope?.split(" ").sort()).toEqual(SCOPES);
    const au = provider.authorizationUrl!;
    expect(`${au.origin}${au.pathname}`).toBe(`${as.issuer}/auth`);
    expect(au.searchParams.get("resource")).toBe(resourceUri);
    expect(au.searchParams.get("code_challenge_method")).toBe("S256");
    expect(au.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(au.searchParams.get("scope")?.split(" ").sort()).toEqual(SCOPES);
    expect(provider.code).toBeTruthy();

    await first.finishAuth(provider.code!);
    const tokens = provider.saved!;
    expect(tokens.access_token.split(".")).toHaveLength(3);
    usedTokens.add(tokens.access_token);
    if (tokens.refresh_token) usedTokens.add(tokens.refresh_token);

    const again = new Client({ name: "oauth-test", version: "1.0.0" });
    await again.connect(new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: recordingFetch }));
    expect((await again.listTools()).tools.map((x) => x.name).sort()).toEqual(["close_ticket", "create_ticket", "get_ticket", "list_tickets"]);
    const listed = await again.callTool({ name: "list_tickets", arguments: { status: "open" } });
    expect(JSON.stringify(listed.content)).toContain("Printer on fire");
    const got = await again.callTool({ name: "get_ticket", arguments: { id: "T-100" } });
    expect(got.isError).toBeFalsy();
    // delete_project is approved but no scope grants it: denied by the agent.
    const denied = await again.callTool({ name: "delete_project", arguments: { project: "ops", confirm: true } }).catch((e: unknown) => e);
    expect((denied as McpError).code).toBe(-32003);
    await again.close();
  });

  it("client credentials (SDK ClientCredentialsProvider, expectedIssuer set) calls tools", async () => {
    const reg = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_basic", tenant: tenantId });
    const provider = new ClientCredentialsProvider({ clientId: reg.client_id, clientSecret: reg.client_secret!, expectedIssuer: as.issuer, scope: SCOPES.join(" ") });
    const client = new Client({ name: "m2m-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(resourceUri), { authProvider: provider, fetch: recordingFetch }));
    const access = (await provider.tokens())!.access_token;
    usedTokens.add(access);
    const claims = JSON.parse(Buffer.from(access.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ iss: as.issuer, aud: resourceUri, client_id: reg.client_id, tenant: tenantId });
    expect((await client.listTools()).tools.map((x) => x.name).sort()).toEqual(["close_ticket", "create_ticket", "get_ticket", "list_tickets"]);
    const created = await client.callTool({ name: "create_ticket", arguments: { title: "Robot ticket", project: "it" } });
    expect(JSON.stringify(created.content)).toContain("Robot ticket");
    await client.close();
  });
});

describe("token matrix through the agent (raw HTTP)", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const base = () => ({ sub: "alice", tenant: tenantId, client_id: "matrix-client", scope: SCOPES.join(" "), aud: resourceUri });

  it("no token: 401 with resource_metadata and scope, no error", async () => {
    const res = await rpc(null);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(challengeBase());
    // The advertised metadata leads to this AS.
    const prm = (await (await fetch(prmUrl())).json()) as { resource: string; authorization_servers: string[] };
    expect(prm.resource).toBe(resourceUri);
    expect(prm.authorization_servers).toEqual([as.issuer]);
  });

  it("a valid token works (the matrix baseline)", async () => {
    const res = await rpc(await as.mintToken(base()), {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it("token in the query string: 401", async () => {
    const good = await as.mintToken(base());
    usedTokens.add(good);
    const res = await fetch(`${resourceUri}?access_token=${good}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(new RegExp(`^${escape(challengeBase())}, error="invalid_request"`));
  });

  const cases: [string, () => Promise<string>, RegExp][] = [
    ["expired", () => as.mintToken({ ...base(), iat: now() - 900, exp: now() - 600 }), /expired/],
    ["not yet valid (nbf)", () => as.mintToken({ ...base(), nbf: now() + 600 }), /not valid yet/],
    ["wrong issuer", () => as.mintToken({ ...base(), iss: "https://evil.example" }), /issuer is not trusted/],
    ["wrong aud", () => as.mintToken({ ...base(), aud: "https://api.example.com/mcp" }), /not for this resource/],
    ["aud of another server on this agent", () => as.mintToken({ ...base(), aud: otherResourceUri, scope: "other:read" }), /not for this resource/],
    ["no aud", () => as.mintToken({ ...base(), aud: undefined }), /aud/],
    ["alg none", async () => unsigned({ iss: as.issuer, iat: now(), exp: now() + 300, ...base() }), /algorithm \\"none\\" is not allowed/],
    ["HS256 signed with the AS's public key", async () => hsWithPublicKey(), /algorithm \\"HS256\\" is not allowed/],
    ["unknown kid", () => as.mintToken(base(), { header: { kid: "no-such-key" } }), /no signing key/],
    ["bad signature", async () => tamper(await as.mintToken(base())), /signature does not verify/],
  ];
  for (const [name, make, why] of cases) {
    it(`${name}: 401 invalid_token`, async () => {
      const res = await rpc(await make());
      expect(res.status).toBe(401);
      const h = res.headers.get("www-authenticate")!;
      expect(h.startsWith(`${challengeBase()}, error="invalid_token", error_description="`), h).toBe(true);
      expect(h).toMatch(why);
      const body = (await res.json()) as { error: string };
      expect(body.error).toBe("invalid_token");
    });
  }

  it("a real token for the other resource is refused here, and works there", async () => {
    const { token } = await clientCredentialsToken(as, otherResourceUri, "other:read", tenantId);
    const here = await rpc(token);
    expect(here.status).toBe(401);
    expect(here.headers.get("www-authenticate")).toMatch(/error="invalid_token", error_description="the access token is not for this resource \(aud\)"/);
    const there = await rpc(token, { jsonrpc: "2.0", id: 1, method: "ping" }, otherResourceUri);
    expect(there.status).not.toBe(401);
    await there.body?.cancel();
  });

  it("a valid token lacking the scope a tool needs: 403 insufficient_scope with the scopes", async () => {
    const { token } = await clientCredentialsToken(as, resourceUri, "tickets:read", tenantId);
    const res = await rpc(token, { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "close_ticket", arguments: { id: "T-100" } } });
    expect(res.status).toBe(403);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer error="insufficient_scope", scope="tickets:write", resource_metadata="${prmUrl()}"`);
    // The same token does reach a tool its scope grants.
    const ok = await rpc(token, { jsonrpc: "2.0", id: 4, method: "tools/call", params: { name: "list_tickets", arguments: {} } });
    expect(ok.status).not.toBe(401);
    expect(ok.status).not.toBe(403);
    await ok.body?.cancel();
  });
});

describe("DNS rebinding (MCP transports 2025-11-25: invalid Origin → 403)", () => {
  it("refuses a foreign Origin even with a valid token, accepts its own origin", async () => {
    const bearer = await as.mintToken({ sub: "alice", tenant: tenantId, client_id: "origin-client", scope: SCOPES.join(" "), aud: resourceUri });
    usedTokens.add(bearer);
    const post = (origin: string) =>
      fetch(resourceUri, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bearer}`, origin },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
      });
    for (const bad of ["http://evil.example.com", `http://localhost:${agentPort}`, `http://127.0.0.1:${agentPort + 1}`, "null"]) {
      const res = await post(bad);
      expect(res.status, bad).toBe(403);
      await res.body?.cancel();
    }
    const ok = await post(`http://127.0.0.1:${agentPort}`);
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
    // The metadata stays readable from anywhere (CORS *).
    expect((await fetch(prmUrl(), { headers: { origin: "http://evil.example.com" } })).status).toBe(200);
  });
});

describe("revoked grants (the bundle's revocations)", () => {
  it("refuses tokens of (user, client, server) issued before the revocation, and only those", async () => {
    const initialize = (bearer: string) => {
      usedTokens.add(bearer);
      return fetch(resourceUri, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
      });
    };
    const now = Math.floor(Date.now() / 1000);
    const mint = (client: string, iat: number) => as.mintToken({ sub: "alice", tenant: tenantId, client_id: client, scope: SCOPES.join(" "), aud: resourceUri, iat });
    const old = await mint("revoked-client", now - 30);
    const otherClient = await mint("other-client", now - 30);
    const first = await initialize(old);
    expect(first.status).toBe(200);
    await first.body?.cancel();

    // Publish a signed revision that revokes (alice, revoked-client, this server) before now,
    // the way the grants issue will: same content, one revocation more.
    const { revision: live } = await getActive();
    const prev = await getBundle(owner.ctx, fleetId, live);
    const revision = live + 1;
    const content = {
      ...prev.content,
      manifest: { ...prev.content.manifest, revision, parentRevision: live },
      revocations: [{ user: qualifiedUser(as.issuer, "alice"), client: "revoked-client", serverId: mainServerId, before: new Date((now - 5) * 1000).toISOString() }],
    };
    const key = await activeSigningKey(t.db, kek);
    const sha256 = contentHash(content);
    const signature = await signPayload(key, { sha256, fleetId, revision });
    const t0 = performance.now();
    await t.db.transaction(async (tx) => {
      await tx.insert(bundles).values({ id: newId("bundle"), fleetId, revision, parentRevision: live, sha256, content: content as never, signature, keyId: key.kid, createdBy: "test" });
      await tx.update(fleets).set({ activeRevision: revision }).where(eq(fleets.id, fleetId));
      await tx.execute(sql`select pg_notify(${BUNDLE_CHANNEL}, ${`${fleetId}:${revision}`})`);
    });
    let res = await initialize(old);
    while (res.status === 200 && performance.now() - t0 < 5000) {
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, 10));
      res = await initialize(old);
    }
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await res.body?.cancel();
    // Another client of the same user, and a token issued after the revocation, still work.
    for (const ok of [otherClient, await mint("revoked-client", now)]) {
      const r = await initialize(ok);
      expect(r.status).toBe(200);
      await r.body?.cancel();
    }
  });
});

describe("no token pass-through", () => {
  it("the upstream never saw any client token", async () => {
    expect(usedTokens.size).toBeGreaterThan(10);
    const log = (await (await fetch(`${sandbox.base}/_sandbox/authorization-log`)).json()) as { headers: string[] };
    const seen = log.headers.join("\n");
    for (const tok of usedTokens) expect(seen.includes(tok)).toBe(false);
    expect(log.headers).toEqual([]);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function unsigned(payload: Record<string, unknown>): string {
  const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${enc({ alg: "none", typ: "at+jwt", kid: as.publicJwk.kid })}.${enc(payload)}.`;
}

/** The classic key-confusion attack: HS256 with the RSA public key (its JWK JSON) as the HMAC secret. */
async function hsWithPublicKey(): Promise<string> {
  const secret = new TextEncoder().encode(JSON.stringify(as.publicJwk));
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "alice", tenant: tenantId, client_id: "matrix-client", scope: SCOPES.join(" ") })
    .setProtectedHeader({ alg: "HS256", kid: as.publicJwk.kid, typ: "at+jwt" })
    .setIssuer(as.issuer)
    .setAudience(resourceUri)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(secret);
}

/** Flips bits in the signature, keeping it valid base64url. */
function tamper(token: string): string {
  const [h, p, s] = token.split(".");
  const sig = Buffer.from(s!, "base64url");
  sig[10] = sig[10]! ^ 0xff;
  return `${h}.${p}.${sig.toString("base64url")}`;
}
