/**
 * Brokered per-user upstream OAuth (issue 13) end to end: a real agent, the
 * control plane's agent API over HTTP, the sandbox oidc-provider as the
 * upstream's authorization server (authorization code + PKCE, refresh tokens,
 * its login and consent interaction driven over HTTP with a cookie jar), the
 * GitHub-like sandbox upstream (each user's own token, aud = itself, logs
 * whose token it saw) and the official MCP SDK client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { auditEvents, tools, upstreamConnections, users, vaultEntries } from "@/db/schema";
import { publishBundle } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { completeConnect, endConnectionAs, getConnectRequest, listConnections, redirectUri, startConnect, type ConnectDeps } from "@/lib/connections/service";
import { getEnv } from "@/lib/env";
import { updateFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { openSecret } from "@/lib/vault/crypto";
import { createEntry } from "@/lib/vault/service";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { startGithubLike, type GithubLike } from "@/sandbox/github-like";
import { registerClient } from "./auth-server-helpers";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";
import { makeUser, uniq, type MadeUser } from "./db";
import { freePort } from "./sandbox";
import { encode } from "next-auth/jwt";
import { NextRequest } from "next/server";
import * as callbackRoute from "@/app/api/v1/admin/connections/callback/route";
import * as startRoute from "@/app/api/v1/admin/connections/requests/[requestId]/start/route";
import * as connectionsRoute from "@/app/api/v1/admin/connections/route";

let s: AgentStack;
let as: AuthServer;
let gh: GithubLike;
let ghServerId = "";
let ghResource = "";
let clientId = "";
let clientSecret = "";
let deps: ConnectDeps;
let alice: MadeUser;
let bob: MadeUser;
let carol: MadeUser;

const mcpToken = (sub: string) => s.issuer.sign({ sub, tenant: s.tenantA, client_id: "gh-client", scope: "repo:read" }, ghResource);

/** An MCP SDK session through the agent: `list_repos` as this user, its JSON answer. */
async function listRepos(bearer: string): Promise<{ login: string; repos: string[] }> {
  const client = new Client({ name: "brokered-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(ghResource), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  try {
    const out = (await client.callTool({ name: "list_repos", arguments: {} })) as { content: { text: string }[] };
    return JSON.parse(out.content[0]!.text) as { login: string; repos: string[] };
  } finally {
    await client.close();
  }
}

/** What the SDK client gets when the user has no usable connection: the -32042 URL elicitation. */
async function elicitation(bearer: string): Promise<{ url: string; requestId: string; reason: string; message: string }> {
  const client = new Client({ name: "brokered-test", version: "1.0.0" });
  const err = await client.connect(new StreamableHTTPClientTransport(new URL(ghResource), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } })).then(
    () => null,
    (e: unknown) => e,
  );
  await client.close().catch(() => undefined);
  expect(err).toBeInstanceOf(McpError);
  const e = err as McpError;
  expect(e.code).toBe(-32042);
  // The SDK client keeps the elicitations of -32042 (UrlElicitationRequiredError); the reason is in the message shown to the user.
  const data = e.data as { elicitations: { mode: string; url: string; elicitationId: string; message: string }[] };
  expect(data.elicitations).toHaveLength(1);
  const el = data.elicitations[0]!;
  expect(el.mode).toBe("url");
  return { url: el.url, requestId: el.elicitationId, reason: /your earlier connection is (\w+)/.exec(el.message)?.[1] ?? "none", message: el.message };
}

/**
 * The browser's part: opens the AS's authorization URL, logs in as `login`
 * (the sandbox's interaction takes the login_hint as the account the user
 * types in) and consents, following redirects with cookies, until the AS
 * redirects to the control plane's callback. Returns the callback's query.
 */
async function authorizeAtAs(authorizationUrl: string, login: string): Promise<URLSearchParams> {
  const jar = new Map<string, string>();
  let url = `${authorizationUrl}&login_hint=${encodeURIComponent(login)}`;
  const callback = redirectUri(deps.origin);
  for (let hop = 0; hop < 12; hop++) {
    const res = await fetch(url, { redirect: "manual", headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair!.indexOf("=");
      jar.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (!location) throw new Error(`the AS answered ${res.status} without a redirect at ${new URL(url).pathname}`);
    const next = new URL(location, url);
    if (next.href.startsWith(callback)) return next.searchParams;
    url = next.href;
  }
  throw new Error("too many redirects");
}

/** The whole connect flow of `user` (dashboard user) for its MCP identity `sub`: elicitation → start → AS → callback. */
async function connect(user: MadeUser, sub: string): Promise<{ connectionId: string; requestId: string; params: URLSearchParams }> {
  const e = await elicitation(await mcpToken(sub));
  const { authorizationUrl } = await startConnect(user.ctx, e.requestId, deps);
  const params = await authorizeAtAs(authorizationUrl, sub);
  const done = await completeConnect(user.ctx, params, deps);
  return { connectionId: done.connectionId, requestId: e.requestId, params };
}

async function ssoUser(sub: string, role: "owner" | "member" = "member"): Promise<MadeUser> {
  const u = await makeUser(s.t.db, { role });
  await s.t.db.update(users).set({ oidcIssuer: s.issuer.issuer, oidcSubject: sub }).where(eq(users.id, u.user.id));
  return u;
}

/** A request with the dashboard's session cookie for this user, as next-auth sets it (same-origin for writes). */
async function asUser(u: MadeUser, method: string, url: string): Promise<NextRequest> {
  const jwt = await encode({ token: { sub: u.user.id, sv: u.user.sessionVersion }, secret: process.env.NEXTAUTH_SECRET! });
  return new NextRequest(url, { method, headers: { cookie: `next-auth.session-token=${jwt}`, origin: new URL(deps.origin).origin } });
}

const revision = () => s.agent.sync.current!.content.manifest.revision;

beforeAll(async () => {
  process.env.MANDATE_EGRESS_ALLOW = "loopback";
  s = await startAgentStack();
  const env = getEnv();
  deps = { kek: env.kek, keyring: env.keyring, origin: env.NEXTAUTH_URL };
  // The GitHub-like upstream needs the AS's keys, the AS needs the upstream as a resource: a port first.
  const ghPort = await freePort();
  const resource = `http://127.0.0.1:${ghPort}/mcp`;
  as = await startAuthServer({
    resources: { [resource]: { scopes: ["repo:read"] } },
    users: { alice: { tenant: "gh" }, bob: { tenant: "gh" }, carol: { tenant: "gh" }, erin: { tenant: "gh" }, frank: { tenant: "gh" } },
    rotateRefreshToken: true,
  });
  gh = await startGithubLike({ issuer: as.issuer, jwksUri: as.jwksUri, port: ghPort });
  const reg = await registerClient(as, {
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    redirect_uris: [redirectUri(deps.origin)],
    token_endpoint_auth_method: "client_secret_basic",
  });
  clientId = reg.client_id;
  clientSecret = reg.client_secret!;

  // A second server on the same agent, served at /gh/mcp, whose upstream is the GitHub-like one.
  ghResource = new URL("/gh/mcp", s.resourceUri).href;
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({
      tenantId: s.tenantA,
      name: uniq("GitHub-like "),
      resourceUri: ghResource,
      upstreamUrl: gh.url,
      scopes: ["repo:read"],
      issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  ghServerId = server!.id;
  // Import needs a user's token at this upstream; the admin imports once while the sandbox lets listing through.
  gh.allowAnonymousListing(true);
  await importCatalog(s.owner.ctx, ghServerId);
  gh.allowAnonymousListing(false);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, ghServerId))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, ghServerId, { baseVersion: 0, mapping: { "repo:read": ["whoami", "list_repos"] } });
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, ghServerId] });
  await createEntry(
    s.owner.ctx,
    {
      serverId: ghServerId,
      tenantId: s.tenantA,
      name: "GitHub-like per user",
      kind: "oauth_user_brokered",
      oauth: { authorizationUrl: `${as.url}/auth`, tokenUrl: `${as.url}/token`, issuer: as.issuer, clientId, scope: "repo:read", audience: gh.url, authMethod: "client_secret_basic" },
      secret: { clientSecret },
    },
    s.kek,
  );
  const before = revision();
  await publishBundle(s.owner.ctx, s.fleetId, { note: "github-like" }, s.kek);
  await s.waitRevision(before + 1);
  alice = await ssoUser("alice");
  bob = await ssoUser("bob");
  carol = await ssoUser("carol");
}, 120_000);

afterAll(async () => {
  await gh?.stop();
  await as?.stop();
  await s?.stop();
});

describe("brokered per-user OAuth", () => {
  it("the vault refuses a brokered entry without the authorization endpoint, and the broker never hands its client secret to an agent", async () => {
    await expect(
      createEntry(
        s.owner.ctx,
        {
          serverId: ghServerId,
          tenantId: null,
          name: "x",
          kind: "oauth_user_brokered",
          oauth: { tokenUrl: `${as.url}/token`, clientId, authMethod: "client_secret_basic" },
          secret: { clientSecret: "s" },
        },
        s.kek,
      ),
    ).rejects.toThrow(/authorization endpoint/);
    const res = await fetch(`${s.cp.url}/api/v1/agent/credentials`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.agent.sync.agentKey}`, "content-type": "application/json" },
      body: JSON.stringify({ serverId: ghServerId, tenantId: s.tenantA }),
    });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain(clientSecret);
  });

  it("a user with no connection gets a URL elicitation to the connect page, and nothing reaches the upstream", async () => {
    const from = gh.log().length;
    const e = await elicitation(await mcpToken("alice"));
    expect(e.reason).toBe("none");
    expect(e.url).toBe(`${deps.origin}/connect/${e.requestId}`);
    expect(gh.log().slice(from)).toEqual([]);
    // The request is alice's: bob (another SSO identity) cannot see or start it.
    await expect(getConnectRequest(bob.ctx, e.requestId)).rejects.toThrow(/not found/);
    await expect(startConnect(bob.ctx, e.requestId, deps)).rejects.toThrow(/not found/);
    expect((await getConnectRequest(alice.ctx, e.requestId)).status).toBe("open");
    // A second call finds the same open request.
    expect((await elicitation(await mcpToken("alice"))).requestId).toBe(e.requestId);
  });

  it("in the stateless era (2026-07-28) the same elicitation comes as an input_required result; nothing reaches the upstream", async () => {
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } };
    const from = gh.log().length;
    const res = await fetch(ghResource, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await mcpToken("dave")}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "list_repos",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "list_repos", arguments: {}, _meta: meta } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      id: number;
      result: { resultType: string; inputRequests: { connect: { method: string; params: { mode: string; url: string; elicitationId: string } } }; requestState: string };
    };
    expect(body.id).toBe(7);
    expect(body.result.resultType).toBe("input_required");
    const el = body.result.inputRequests.connect;
    expect(el.method).toBe("elicitation/create");
    expect(el.params.mode).toBe("url");
    expect(el.params.url).toBe(`${deps.origin}/connect/${el.params.elicitationId}`);
    expect(body.result.requestState).toBe(`mandate-connect:${el.params.elicitationId}`);
    expect(gh.log().slice(from)).toEqual([]);
  });

  it("after the connect flow two users' calls reach the upstream with their own tokens, never a client token; one token fetch per user", async () => {
    const a = await connect(alice, "alice");
    const b = await connect(bob, "bob");
    expect(a.connectionId).not.toBe(b.connectionId);
    const fetches = s.agent.credentials.brokered.stats.fetches;
    const from = gh.log().length;
    const aliceToken = await mcpToken("alice");
    const bobToken = await mcpToken("bob");
    expect(await listRepos(aliceToken)).toEqual({ login: "alice", repos: ["alice/dotfiles", "alice/website"] });
    expect(await listRepos(bobToken)).toEqual({ login: "bob", repos: ["bob/compiler"] });
    expect(await listRepos(aliceToken)).toMatchObject({ login: "alice" });
    // Each session is several upstream requests; the agent asked the control plane once per user.
    expect(s.agent.credentials.brokered.stats.fetches - fetches).toBe(2);
    const seen = gh.log().slice(from);
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(seen.every((l) => l.accepted)).toBe(true);
    expect(new Set(seen.map((l) => l.sub))).toEqual(new Set(["alice", "bob"]));
    for (const l of seen) expect([aliceToken, bobToken]).not.toContain(l.token);
    // Stored sealed: no token in clear in the row.
    const [row] = await s.t.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, a.connectionId));
    const aliceUpstream = seen.find((l) => l.sub === "alice")!.token!;
    expect(JSON.stringify(row)).not.toContain(aliceUpstream);
    expect(row!.status).toBe("active");
    // Users see their own connections only.
    expect((await listConnections(alice.ctx, {})).items.map((c) => c.id)).toEqual([a.connectionId]);
    expect(JSON.stringify(await listConnections(s.owner.ctx, { view: "all", serverId: ghServerId }))).not.toContain(aliceUpstream);
  });

  it("a state is good once, for the user who started it, and not past its request", async () => {
    const e = await elicitation(await mcpToken("carol"));
    const { authorizationUrl } = await startConnect(carol.ctx, e.requestId, deps);
    const params = await authorizeAtAs(authorizationUrl, "carol");
    // Another signed-in user presenting carol's state (login CSRF / a stolen link): refused, and carol's flow still works.
    await expect(completeConnect(bob.ctx, params, deps)).rejects.toThrow(/not issued to you/);
    // A forged state (another request id under carol's MAC) fails the MAC.
    const forged = new URLSearchParams(params);
    forged.set("state", params.get("state")!.replace(/^cnr_[0-9a-f]{4}/, "cnr_0000"));
    await expect(completeConnect(carol.ctx, forged, deps)).rejects.toThrow(/state/);
    const done = await completeConnect(carol.ctx, params, deps);
    expect(done.serverId).toBe(ghServerId);
    // Replay of the same redirect: the request is consumed.
    await expect(completeConnect(carol.ctx, params, deps)).rejects.toThrow(/already used/);
    expect(await listRepos(await mcpToken("carol"))).toMatchObject({ login: "carol", repos: [] });
  });

  it("through the routes with a session cookie: start answers the AS's URL, the callback stores the connection and redirects to /connections; another user's session gets the error", async () => {
    const erin = await ssoUser("erin");
    const e = await elicitation(await mcpToken("erin"));
    const params = { params: Promise.resolve({ requestId: e.requestId }) };
    const started = await startRoute.POST(await asUser(erin, "POST", `${deps.origin}/api/v1/admin/connections/requests/${e.requestId}/start`), params);
    expect(started.status).toBe(200);
    const { authorizationUrl } = (await started.json()) as { authorizationUrl: string };
    const u = new URL(authorizationUrl);
    expect(u.origin + u.pathname).toBe(`${as.url}/auth`);
    expect(u.searchParams.get("code_challenge_method")).toBe("S256");
    expect(u.searchParams.get("resource")).toBe(gh.url);
    const back = await authorizeAtAs(authorizationUrl, "erin");
    const callbackUrl = `${redirectUri(deps.origin)}?${back}`;
    const noRoute = { params: Promise.resolve({}) };
    // Not signed in: sent to sign in, then back to this same callback; nothing stored meanwhile.
    const anon = await callbackRoute.GET(new NextRequest(callbackUrl), noRoute);
    expect(anon.status).toBe(303);
    const login = new URL(anon.headers.get("location")!);
    expect(login.pathname).toBe("/login");
    expect(login.searchParams.get("callbackUrl")).toBe(`/api/v1/admin/connections/callback?${back}`);
    // Signed in as someone else: refused, erin's flow intact.
    const wrong = await callbackRoute.GET(await asUser(bob, "GET", callbackUrl), noRoute);
    expect(wrong.status).toBe(303);
    expect(new URL(wrong.headers.get("location")!).searchParams.get("error")).toMatch(/not issued to you/);
    const ok = await callbackRoute.GET(await asUser(erin, "GET", callbackUrl), noRoute);
    expect(ok.status).toBe(303);
    const to = new URL(ok.headers.get("location")!);
    expect(to.pathname).toBe("/connections");
    expect(to.searchParams.get("connected")).toBe(ghServerId);
    const list = (await (await connectionsRoute.GET(await asUser(erin, "GET", `${deps.origin}/api/v1/admin/connections`), noRoute)).json()) as { items: { status: string; serverId: string }[] };
    expect(list.items).toMatchObject([{ status: "active", serverId: ghServerId }]);
    expect(JSON.stringify(list)).not.toMatch(/eyJ/);
    expect(await listRepos(await mcpToken("erin"))).toMatchObject({ login: "erin" });
  });

  it("an entry that names only the AS's issuer has its authorization endpoint discovered (through the egress guard) and connects the same way", async () => {
    const [entry] = await s.t.db.select().from(vaultEntries).where(eq(vaultEntries.serverId, ghServerId));
    const { authorizationUrl: _dropped, ...issuerOnly } = entry!.oauth!;
    await s.t.db.update(vaultEntries).set({ oauth: issuerOnly }).where(eq(vaultEntries.id, entry!.id));
    try {
      const frank = await ssoUser("frank");
      const e = await elicitation(await mcpToken("frank"));
      const { authorizationUrl } = await startConnect(frank.ctx, e.requestId, deps);
      expect(authorizationUrl.startsWith(`${as.url}/auth?`)).toBe(true);
      await completeConnect(frank.ctx, await authorizeAtAs(authorizationUrl, "frank"), deps);
      expect(await listRepos(await mcpToken("frank"))).toMatchObject({ login: "frank" });
    } finally {
      await s.t.db.update(vaultEntries).set({ oauth: entry!.oauth }).where(eq(vaultEntries.id, entry!.id));
    }
  });

  it("a disconnected user's cached token is dropped through the live section and the user is asked to connect again", async () => {
    const token = await mcpToken("alice");
    expect(await listRepos(token)).toMatchObject({ login: "alice" });
    const held = s.agent.credentials.brokered.count;
    const [mine] = (await listConnections(alice.ctx, {})).items;
    const before = revision();
    await endConnectionAs(alice.ctx, mine!.id, deps);
    await s.waitRevision(before + 1);
    expect(s.agent.sync.current!.content.connectionCuts?.some((c) => c.user === `${s.issuer.issuer}#alice` && c.serverId === ghServerId)).toBe(true);
    expect(s.agent.credentials.brokered.count).toBe(held - 1);
    const from = gh.log().length;
    const e = await elicitation(token);
    expect(e.reason).toBe("disconnected");
    expect(gh.log().slice(from)).toEqual([]);
    const [trail] = await s.t.db.select().from(auditEvents).where(eq(auditEvents.targetId, mine!.id)).orderBy(auditEvents.at).limit(10);
    expect(trail).toBeDefined();
    // Connecting again works.
    await connect(alice, "alice");
    expect(await listRepos(token)).toMatchObject({ login: "alice" });
  });

  it("an admin's revocation stops the agent using its cached token at once; a member cannot revoke another's", async () => {
    const token = await mcpToken("bob");
    expect(await listRepos(token)).toMatchObject({ login: "bob" });
    const [bobs] = (await listConnections(bob.ctx, {})).items;
    await expect(endConnectionAs(carol.ctx, bobs!.id, deps)).rejects.toThrow(/not found/);
    const before = revision();
    const revoked = await endConnectionAs(s.owner.ctx, bobs!.id, deps);
    expect(revoked.status).toBe("revoked");
    await s.waitRevision(before + 1);
    const from = gh.log().length;
    expect((await elicitation(token)).reason).toBe("revoked");
    expect(gh.log().slice(from)).toEqual([]);
    const actions = (await s.t.db.select({ a: auditEvents.action }).from(auditEvents).where(eq(auditEvents.targetId, bobs!.id))).map((r) => r.a);
    expect(actions).toEqual(expect.arrayContaining(["connection.connect", "connection.revoke"]));
  });

  it("an expiring access token is refreshed by the control plane; a refresh token the AS refuses (invalid_grant) breaks the connection and asks the user to connect again", async () => {
    const token = await mcpToken("carol");
    const [c] = (await listConnections(carol.ctx, {})).items;
    const expire = () =>
      s.t.db
        .update(upstreamConnections)
        .set({ accessExpiresAt: new Date(Date.now() + 5_000) })
        .where(eq(upstreamConnections.id, c!.id));
    const [row0] = await s.t.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, c!.id));
    await expire();
    s.agent.credentials.brokered.clear();
    const from = gh.log().length;
    expect(await listRepos(token)).toMatchObject({ login: "carol" });
    const [row1] = await s.t.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, c!.id));
    expect(row1!.generation).toBe(row0!.generation + 1);
    expect(row1!.refreshedAt).not.toBeNull();
    const refreshedToken = gh.log().slice(from)[0]!.token;
    const sealed = (r: typeof row0) => JSON.parse(String(openSecret(deps.keyring, r!.id, r!.generation, r as { ciphertext: string; wrappedKey: string; kekId: string }))) as { a: string; r: string };
    const old = sealed(row0);
    expect(refreshedToken).not.toBe(old.a);
    // The AS rotates refresh tokens: the new one is stored (the used one is dead at the AS), so a second refresh works too.
    expect(sealed(row1).r).not.toBe(old.r);
    await expire();
    s.agent.credentials.brokered.clear();
    expect(await listRepos(token)).toMatchObject({ login: "carol" });
    const [row1b] = await s.t.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, c!.id));
    expect(row1b!.generation).toBe(row1!.generation + 1);
    expect(row1b!.status).toBe("active");

    // The user revokes the grant at the upstream's AS (RFC 7009 on the refresh token): the next refresh gets invalid_grant.
    const cur = sealed(row1b);
    const rv = await fetch(`${as.url}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}` },
      body: new URLSearchParams({ token: cur.r, token_type_hint: "refresh_token" }),
    });
    expect(rv.status).toBe(200);
    await expire();
    s.agent.credentials.brokered.clear();
    const e = await elicitation(token);
    expect(e.reason).toBe("broken");
    const [row2] = await s.t.db.select().from(upstreamConnections).where(eq(upstreamConnections.id, c!.id));
    expect(row2!.status).toBe("broken");
    expect(row2!.ciphertext).toBeNull();
    await until(() => (s.agent.sync.current!.content.connectionCuts ?? []).some((x) => x.user.endsWith("#carol")));
  });
});
