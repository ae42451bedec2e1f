/**
 * Per-user upstream delegation by RFC 8693 token exchange, end to end: the
 * vault entry (oauth_token_exchange), the broker, the live bundle, a real
 * agent, the sandbox oidc-provider as the upstream's AS (token-exchange grant)
 * and the sandbox upstream logging the Authorization it saw.
 */
import { createServer as createHttpServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt } from "jose";
import { revocations } from "@/db/schema";
import { republishLiveBundles } from "@/lib/bundles/service";
import { newId } from "@/lib/ids";
import { qualifiedUser } from "@/lib/enforcement/token";
import { createEntry } from "@/lib/vault/service";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { CredentialBroker, CredentialUnavailable, type BrokeredCredential } from "@/agent/credentials";
import { Metrics } from "@/agent/metrics";
import type { Principal } from "@/agent/token";
import { registerClient } from "./auth-server-helpers";
import { startAgentStack, type AgentStack, type SandboxRequest } from "./agent-proc-harness";

let s: AgentStack & { extraTenantIds: string[] };
let as: AuthServer;
let agentClientId: string;

async function since(from: number): Promise<SandboxRequest[]> {
  return (await s.upstreamLog()).slice(from).filter((r) => r.client !== "mandate-catalog");
}

async function call(bearer: string): Promise<{ status: number; body: { result?: unknown; error?: { code: number; message: string } } }> {
  const res = await s.rpc({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "list_tickets", arguments: {} } }, { authorization: `Bearer ${bearer}` });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  const json = type.includes("event-stream")
    ? JSON.parse(
        text
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .pop()!
          .slice(5),
      )
    : text
      ? JSON.parse(text)
      : {};
  return { status: res.status, body: json };
}

/** A whole MCP session through the agent (initialize, notifications/initialized, tools/call, DELETE). */
async function session(bearer: string): Promise<void> {
  const client = await s.connect(bearer);
  const out = (await client.callTool({ name: "list_tickets", arguments: {} })) as { content: { text: string }[] };
  expect(out.content[0]!.text).toContain("Printer on fire");
  await (client.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
  await client.close();
}

async function live(change: (tx: typeof s.t.db) => Promise<unknown>, why: string): Promise<void> {
  const rev = s.agent.sync.current!.content.manifest.revision;
  await s.t.db.transaction(async (tx) => {
    await change(tx);
    await republishLiveBundles(tx, s.owner.actor, s.kek, [s.serverId], why);
  });
  await s.waitRevision(rev + 1);
}

beforeAll(async () => {
  s = await startAgentStack();
  await s.setApiKeys([]);
  // The upstream's AS trusts the agent's issuer for subject tokens (a federation an operator sets up at its AS).
  as = await startAuthServer({ resources: { [s.sandbox.url]: { scopes: ["tickets:read"] } }, trustedSubjectIssuers: { [s.issuer.issuer]: s.issuer.jwksUri } });
  const c = await registerClient(as, { grant_types: ["urn:ietf:params:oauth:grant-type:token-exchange"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_basic" });
  agentClientId = c.client_id;
  const before = s.agent.sync.current!.content.manifest.revision;
  await createEntry(
    s.owner.ctx,
    {
      serverId: s.serverId,
      tenantId: s.tenantA,
      name: "per-user tickets",
      kind: "oauth_token_exchange",
      oauth: { tokenUrl: `${as.url}/token`, clientId: c.client_id, audience: s.sandbox.url, scope: "tickets:read", authMethod: "client_secret_basic" },
      secret: { clientSecret: c.client_secret! },
    },
    s.kek,
  );
  await s.waitRevision(before + 1);
}, 120_000);

afterAll(async () => {
  await as?.stop();
  await s?.stop();
});

describe("token exchange (RFC 8693) at the agent", () => {
  it("the vault refuses a token exchange entry without the upstream audience", async () => {
    await expect(
      createEntry(
        s.owner.ctx,
        {
          serverId: s.serverId,
          tenantId: null,
          name: "x",
          kind: "oauth_token_exchange",
          oauth: { tokenUrl: `${as.url}/token`, clientId: "c", authMethod: "client_secret_basic" },
          secret: { clientSecret: "s" },
        },
        s.kek,
      ),
    ).rejects.toThrow();
  });

  it("two users reach the upstream each with an exchanged token (aud = upstream, act = the agent, sub = the user), never the client's; a second call uses the cache", async () => {
    const alice = await s.token("tickets:read", { sub: "alice" });
    const bob = await s.token("tickets:read", { sub: "bob" });
    const from = (await s.upstreamLog()).length;
    const issued = as.tokenExchange.issued;
    await session(alice);
    await session(bob);
    // Each session is several upstream requests: one exchange per user.
    expect(as.tokenExchange.issued - issued).toBe(2);
    // Within the token's life: no new exchange.
    await session(alice);
    await session(bob);
    expect(as.tokenExchange.issued - issued).toBe(2);

    const seen = await since(from);
    expect(seen.length).toBeGreaterThanOrEqual(4);
    const subs = new Set<string>();
    for (const r of seen) {
      expect(r.authorization).toMatch(/^Bearer /);
      const tok = r.authorization!.slice(7);
      expect(tok).not.toBe(alice);
      expect(tok).not.toBe(bob);
      const claims = decodeJwt(tok);
      expect(claims.iss).toBe(as.issuer);
      expect(claims.aud).toBe(s.sandbox.url);
      expect(claims.act).toEqual({ sub: agentClientId });
      subs.add(String(claims.sub));
    }
    expect(subs).toEqual(new Set(["alice", "bob"]));
    // Never shared across users: one cached token per user.
    expect(s.agent.credentials.userTokenCount).toBe(2);
  });

  it("a revoked grant drops the user's cached token (the call is refused; the other user's stays)", async () => {
    const carol = await s.token("tickets:read", { sub: "carol" });
    await session(carol);
    const held = s.agent.credentials.userTokenCount;
    await live(
      (tx) =>
        tx
          .insert(revocations)
          .values({ id: newId("revocation"), tenantId: s.tenantA, userId: qualifiedUser(s.issuer.issuer, "carol"), before: new Date(Date.now() + 2000), createdBy: s.owner.user.id }),
      "revoke carol",
    );
    expect(s.agent.credentials.userTokenCount).toBe(held - 1);
    const from = (await s.upstreamLog()).length;
    expect((await call(carol)).status).toBe(401);
    expect(await since(from)).toEqual([]);
  });

  it("the AS refusing the exchange: a clear JSON-RPC error, no token echoed, nothing reaches the upstream", async () => {
    as.tokenExchange.refuseExchange = true;
    try {
      const dave = await s.token("tickets:read", { sub: "dave" });
      const from = (await s.upstreamLog()).length;
      const failures = s.agent.metrics.credentialFailures;
      const refused = as.tokenExchange.refused;
      const r = await call(dave);
      expect(r.status).toBe(502);
      expect(r.body.error).toEqual({ code: -32603, message: "Upstream credential unavailable" });
      expect(JSON.stringify(r.body)).not.toContain(dave.slice(0, 20));
      expect(as.tokenExchange.refused - refused).toBe(1);
      expect(s.agent.metrics.credentialFailures - failures).toBe(1);
      expect(await since(from)).toEqual([]);
    } finally {
      as.tokenExchange.refuseExchange = false;
    }
  });
});

describe("token exchange in the credential broker (local peers)", () => {
  let peer: Server;
  let base = "";
  let answer: (res: ServerResponse) => void = () => undefined;
  let exchanges: URLSearchParams[] = [];
  beforeAll(async () => {
    peer = createHttpServer((req, res) => {
      let raw = "";
      req.on("data", (c: Buffer) => (raw += c.toString()));
      req.on("end", () => {
        if (req.url === "/api/v1/agent/credentials") {
          const got: BrokeredCredential = {
            entryId: "vlt_x",
            kind: "oauth_token_exchange",
            placement: { in: "header", name: "authorization" },
            version: JSON.parse(raw).tenantId === "ten_v2" ? 2 : 1,
            secret: { clientSecret: "agent-secret" },
            oauth: { tokenUrl: `${base}/token`, clientId: "agent", audience: "https://up.example/mcp", authMethod: "client_secret_basic" },
            ttlSeconds: 300,
          };
          return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(got));
        }
        exchanges.push(new URLSearchParams(raw));
        answer(res);
      });
    });
    await new Promise<void>((r) => peer.listen(0, "127.0.0.1", () => r()));
    base = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => peer.close(() => r())));

  const principal = (user: string): Principal => ({
    issuer: "https://idp.example/",
    tenantId: "ten_a",
    user,
    client: "app",
    scopes: [],
    groups: [],
    actors: [],
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 600,
  });
  const bundle = (version = 1, revoked: string[] = []) =>
    ({
      credentials: [{ entryId: "vlt_x", serverId: "srv_1", tenantId: null, kind: "oauth_token_exchange", placement: { in: "header", name: "authorization" }, version }],
      servers: [{ id: "srv_1", tenantId: "ten_a", tenantIds: ["ten_a"] }],
      revocations: revoked.map((u) => ({ tenantId: "ten_a", user: u, before: new Date(Date.now() + 60_000).toISOString() })),
    }) as unknown as BundleContent;
  const newBroker = (logs: string[] = []) => new CredentialBroker({ controlPlaneUrl: base, agentKey: () => "mda_t.k", metrics: new Metrics(), log: (m) => logs.push(m) });

  it("sends an RFC 8693 request as the agent, caches per user, drops on rotation and revocation; no user → unavailable", async () => {
    exchanges = [];
    answer = (res) => {
      const sub = exchanges.at(-1)!.get("subject_token");
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ access_token: `x-${sub}`, token_type: "Bearer", expires_in: 600, issued_token_type: "urn:ietf:params:oauth:token-type:access_token" }));
    };
    const b = newBroker();
    const c = bundle();
    const a = await b.resolve(c, "srv_1", "ten_a", { token: "tok-alice", principal: principal("alice") });
    const z = await b.resolve(c, "srv_1", "ten_a", { token: "tok-bob", principal: principal("bob") });
    expect([a!.value, z!.value]).toEqual(["Bearer x-tok-alice", "Bearer x-tok-bob"]);
    expect(Object.fromEntries(exchanges[0]!)).toEqual({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: "tok-alice",
      subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      resource: "https://up.example/mcp",
    });
    expect((await b.resolve(c, "srv_1", "ten_a", { token: "tok-alice", principal: principal("alice") }))!.value).toBe("Bearer x-tok-alice");
    expect(exchanges).toHaveLength(2);
    await expect(b.resolve(c, "srv_1", "ten_a")).rejects.toBeInstanceOf(CredentialUnavailable);

    b.prefetch(bundle(1, ["alice"]));
    expect(b.userTokenCount).toBe(1);
    b.prefetch(bundle(2));
    expect(b.userTokenCount).toBe(0);
  });

  it("an answer over 64 KiB or a refusal fails closed with no token or body in the error or log", async () => {
    const logs: string[] = [];
    answer = (res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: "y".repeat(70 * 1024), token_type: "Bearer" }));
    const b = newBroker(logs);
    const big = await b.resolve(bundle(), "srv_1", "ten_a", { token: "tok-carol", principal: principal("carol") }).catch((e: unknown) => e);
    expect(big).toBeInstanceOf(CredentialUnavailable);
    answer = (res) => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "invalid_grant", error_description: "SECRET-BODY" }));
    const refused = await b.resolve(bundle(), "srv_1", "ten_a", { token: "tok-dave", principal: principal("dave") }).catch((e: unknown) => e);
    expect((refused as Error).message).toBe("credential vlt_x unavailable: the token endpoint refused the token exchange: 400 (invalid_grant)");
    expect(logs.join("\n")).not.toMatch(/tok-|SECRET-BODY|agent-secret|yyyy/);
  });
});
