/**
 * Live sections enforced by a real agent: client approval, revocations
 * (tenant-scoped, with the RFC 7009 call to the sandbox authorization
 * server), and masking of the arguments in decision lines.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { eq } from "drizzle-orm";
import { maskingRules, oauthClients, revocations, tenants } from "@/db/schema";
import { republishLiveBundles } from "@/lib/bundles/service";
import { newId } from "@/lib/ids";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { Metrics } from "@/agent/metrics";
import { toDecisionLine } from "@/agent/shipper";
import { decisionLine } from "@/lib/decisions/ingest";
import type { Principal } from "@/agent/token";
import { UpstreamRevoker } from "@/agent/upstream-revocation";
import { qualifiedUser } from "@/lib/enforcement/token";
import type { BundleServer } from "@/lib/enforcement/bundle";
import { registerClient } from "./auth-server-helpers";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;
let as: AuthServer;
/** A counting wrapper in front of the AS: every request it forwards, with its form body. */
let front: Server;
let frontUrl: string;
const seenAtAs: { path: string; form: Record<string, string>; status: number }[] = [];

/** Changes live state and republishes in one transaction, then waits for the agent to enforce it. */
async function live(change: (tx: typeof s.t.db) => Promise<unknown>, why: string): Promise<void> {
  const rev = s.agent.sync.current!.content.manifest.revision;
  await s.t.db.transaction(async (tx) => {
    await change(tx);
    await republishLiveBundles(tx, s.owner.actor, s.kek, [s.serverId], why);
  });
  await s.waitRevision(rev + 1);
}

/** One tools/call in its own MCP session: the result, or the JSON-RPC error (code and data). */
async function call(bearer: string, name: string, args: Record<string, unknown>): Promise<{ result?: unknown; error?: { code: number; data: { reason: string; decisionId: string } } }> {
  const c = await s.connect(bearer);
  try {
    return { result: await c.callTool({ name, arguments: args }) };
  } catch (err) {
    if (err instanceof McpError) return { error: { code: err.code, data: err.data as { reason: string; decisionId: string } } };
    throw err;
  } finally {
    await c.close();
  }
}

/** The HTTP status of an initialize with this token (401 when refused before anything is forwarded). */
const probe = async (bearer: string) =>
  (
    await s.rpc(
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "probe", version: "1" } } },
      { authorization: `Bearer ${bearer}` },
    )
  ).status;

beforeAll(async () => {
  as = await startAuthServer({ resources: { "http://127.0.0.1:1/mcp": { scopes: ["tickets:read"] } } });
  front = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      void fetch(`${as.url}${req.url}`, { method: req.method, headers: { "content-type": req.headers["content-type"] ?? "" }, body: raw || undefined }).then(async (up) => {
        seenAtAs.push({ path: req.url ?? "", form: Object.fromEntries(new URLSearchParams(raw)), status: up.status });
        res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" }).end(Buffer.from(await up.arrayBuffer()));
      });
    });
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", () => r()));
  frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  s = await startAgentStack({
    extraIssuers: [{ issuer: as.issuer, jwksUri: as.jwksUri, discovery: false, algorithms: ["RS256"], revocationEndpoint: `${frontUrl}/token/revocation` }],
  });
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await as?.stop();
  await new Promise<void>((r) => (front ? front.close(() => r()) : r()));
});

describe("client approval", () => {
  it("an unapproved client is denied with a clear reason (tools/list lists nothing) until an admin approves it", async () => {
    const bearer = await s.token("tickets:read");
    expect(await call(bearer, "list_tickets", {})).toMatchObject({ result: { content: [{ type: "text" }] } });

    await live((tx) => tx.update(tenants).set({ requireClientApproval: true }).where(eq(tenants.id, s.tenantA)), "tenant requires client approval");
    expect(s.agent.sync.current!.content.clientApproval).toEqual([s.tenantA]);
    const reason = `client test-client is not approved for tenant ${s.tenantA}`;
    const denied = (await call(bearer, "list_tickets", {})) as { error: { code: number; data: { reason: string; decisionId: string } } };
    expect(denied.error.code).toBe(-32003);
    expect(denied.error.data.reason).toBe(reason);
    const client = await s.connect(bearer);
    expect((await client.listTools()).tools).toEqual([]);
    await client.close();
    await s.agent.wal.flush();
    const line = (await s.walLines()).find((l) => l.id === denied.error.data.decisionId)!;
    expect(line).toMatchObject({ outcome: "deny", reason, tool: "list_tickets", client: "test-client", tenantId: s.tenantA });
    // Tenant B does not require approval: the same client is fine there.
    const b = await s.token("tickets:read", { tenant: s.tenantB });
    expect((await call(b, "list_tickets", {})).result).toBeDefined();

    await live(
      (tx) => tx.insert(oauthClients).values({ id: newId("client"), tenantId: s.tenantA, clientId: "test-client", status: "approved", decidedBy: s.owner.user.id, decidedAt: new Date() }),
      "client approved",
    );
    expect(s.agent.sync.current!.content.approvedClients).toEqual([{ tenantId: s.tenantA, clientId: "test-client" }]);
    expect((await call(bearer, "list_tickets", {})).result).toBeDefined();
    const again = await s.connect(bearer);
    expect((await again.listTools()).tools.map((t) => t.name).sort()).toEqual(["get_ticket", "list_tickets"]);
    await again.close();
    // Another client of the same tenant is still refused.
    const other = await s.token("tickets:read", { client_id: "other-client" });
    expect((await call(other, "list_tickets", {})).error?.data.reason).toBe(`client other-client is not approved for tenant ${s.tenantA}`);
    await live((tx) => tx.update(tenants).set({ requireClientApproval: false }).where(eq(tenants.id, s.tenantA)), "approval off");
  });
});

describe("revocations", () => {
  it("match the tenant: a revocation of dave in tenant B leaves dave of tenant A alone", async () => {
    const daveA = await s.token("tickets:read", { sub: "dave" });
    const daveB = await s.token("tickets:read", { sub: "dave", tenant: s.tenantB });
    await live(
      (tx) =>
        tx
          .insert(revocations)
          .values({ id: newId("revocation"), tenantId: s.tenantB, userId: qualifiedUser(s.issuer.issuer, "dave"), before: new Date(Date.now() + 2000), createdBy: s.owner.user.id }),
      "revoke dave in B",
    );
    const refused = await s.rpc({ jsonrpc: "2.0", id: 1, method: "ping" }, { authorization: `Bearer ${daveB}` });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toContain('error_description="the grant behind this token was revoked"');
    expect(await probe(daveA)).toBe(200);
    // The test issuer has no revocation endpoint: nothing sent anywhere.
    expect(s.agent.revoker.pending.size).toBe(0);
    expect(seenAtAs.filter((r) => r.path === "/token/revocation")).toEqual([]);
  });

  it("RFC 7009: a refused token is reported once to its issuer's revocation endpoint, counted, never logged", async () => {
    const pub = await registerClient(as, { token_endpoint_auth_method: "none", grant_types: ["authorization_code"], response_types: ["code"], redirect_uris: ["http://127.0.0.1:9/cb"] });
    const erin = await as.mintToken({ sub: "erin", tenant: s.tenantA, client_id: pub.client_id, scope: "tickets:read", aud: s.resourceUri });
    expect(await probe(erin)).toBe(200);
    await live(
      (tx) =>
        tx
          .insert(revocations)
          .values({ id: newId("revocation"), tenantId: s.tenantA, userId: qualifiedUser(as.issuer, "erin"), clientId: pub.client_id, before: new Date(Date.now() + 2000), createdBy: s.owner.user.id }),
      "revoke erin",
    );
    expect(await probe(erin)).toBe(401);
    await until(() => s.agent.revoker.pending.size === 0 && seenAtAs.some((r) => r.path === "/token/revocation"));
    await Promise.all([...s.agent.revoker.pending]);
    const sent = seenAtAs.filter((r) => r.path === "/token/revocation");
    // oidc-provider cannot revoke the JWT access tokens it issues: it answers RFC 7009 §2.2.1 unsupported_token_type (400).
    expect(sent).toEqual([{ path: "/token/revocation", form: { token: erin, token_type_hint: "access_token", client_id: pub.client_id }, status: 400 }]);
    // Once per token.
    expect(await probe(erin)).toBe(401);
    await new Promise((r) => setTimeout(r, 200));
    expect(seenAtAs.filter((r) => r.path === "/token/revocation")).toHaveLength(1);
    const metrics = await (await fetch(`${s.agent.url}/metrics`)).text();
    expect(metrics).toContain('mandate_upstream_revocations_total{result="unsupported"} 1\n');
    expect(metrics).toContain('mandate_upstream_revocations_total{result="ok"} 0\n');
    expect(metrics).toContain('mandate_upstream_revocations_total{result="error"} 0\n');
    expect(metrics).not.toContain(erin);
  });
});

describe("upstream revoker", () => {
  it("counts ok (200), error (other answers, unreachable), dedupes by token, skips issuers without an endpoint", async () => {
    let status = 200;
    const got: string[] = [];
    const srv = createServer((req, res) => {
      let raw = "";
      req.on("data", (c: Buffer) => (raw += c.toString()));
      req.on("end", () => {
        got.push(raw);
        res.writeHead(status, { "content-type": "application/json" }).end(status === 200 ? "" : JSON.stringify({ error: "invalid_client" }));
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/revoke`;
    const metrics = new Metrics();
    const logs: string[] = [];
    const revoker = new UpstreamRevoker({ metrics, log: (m) => logs.push(m) });
    // The endpoint is the principal's own tenant's (its trust entry), never the server owner's or another tenant's.
    const server = {
      issuers: [{ issuer: "https://as.example", revocationEndpoint: "http://127.0.0.1:1/owner-controlled" }],
      trust: [
        { tenantId: "ten_a", issuer: "https://as.example", revocationEndpoint: url },
        { tenantId: "ten_a", issuer: "https://plain.example" },
        { tenantId: "ten_b", issuer: "https://plain.example", revocationEndpoint: url },
      ],
    } as unknown as BundleServer;
    const p = (client: string, issuer = "https://as.example", tenantId = "ten_a") => ({ issuer, client, tenantId }) as Principal;
    await revoker.revoke("tok-1", p("c1"), server);
    expect(revoker.revoke("tok-1", p("c1"), server)).toBeNull();
    expect(revoker.revoke("tok-x", p("c1", "https://plain.example"), server)).toBeNull();
    expect(revoker.revoke("tok-y", p("c1", "https://as.example", "ten_c"), server)).toBeNull();
    status = 401;
    await revoker.revoke("tok-2", p("c2"), server);
    await new Promise<void>((r) => srv.close(() => r()));
    await revoker.revoke("tok-3", p("c3"), server);
    expect(got).toEqual(["token=tok-1&token_type_hint=access_token&client_id=c1", "token=tok-2&token_type_hint=access_token&client_id=c2"]);
    expect(Object.fromEntries(metrics.upstreamRevocations)).toEqual({ ok: 1, error: 2 });
    expect(logs.join("\n")).not.toMatch(/tok-\d/);
  });
});

describe("masking in decision lines", () => {
  it("tools/call lines carry the masked arguments and the context; other methods carry none", async () => {
    await live(
      (tx) =>
        tx.insert(maskingRules).values([
          { id: newId("mask"), serverId: s.serverId, tool: "create_ticket", paths: ["title"], mode: "hide", createdBy: s.owner.user.id },
          { id: newId("mask"), serverId: s.serverId, tool: "*", paths: ["project", "meta.*.ssn"], mode: "hash", createdBy: s.owner.user.id },
        ]),
      "masking",
    );
    const bearer = await s.token("tickets:read tickets:write", { groups: ["support"] });
    const res = await call(bearer, "create_ticket", { title: "Salary of Bob is 123456", project: "ops", meta: [{ ssn: "078-05-1120", keep: 1 }] });
    expect(res.result).toBeDefined();
    const big = await call(bearer, "get_ticket", { id: "T-100", blob: "x".repeat(20_000) });
    expect(big.result ?? big.error).toBeDefined();
    await s.agent.wal.flush();
    const lines = await s.walLines();
    const created = lines.filter((l) => l.tool === "create_ticket").at(-1)!;
    expect(created.outcome).toBe("allow");
    expect(created.args).toMatchObject({ title: "[masked]", meta: [{ keep: 1 }] });
    expect(created.args!.project).toMatch(/^sha256:[0-9a-f]{32}$/);
    expect((created.args!.meta as { ssn: string }[])[0]!.ssn).toMatch(/^sha256:/);
    expect(created.context).toMatchObject({ groups: ["support"], actors: [], token: { iss: s.issuer.issuer }, masked: ["project", "title", "meta.0.ssn"] });
    expect(created.context!.token!.exp).toBeGreaterThan(created.context!.token!.iat);
    const text = JSON.stringify(lines);
    expect(text).not.toContain("Salary");
    expect(text).not.toContain("078-05-1120");
    // What the shipper sends passes the control plane's strict decision line, masked args and context included.
    const shipped = JSON.parse(toDecisionLine(JSON.stringify(created))!) as Record<string, unknown>;
    const parsed = decisionLine.safeParse(shipped);
    expect(parsed.success).toBe(true);
    expect(parsed.data).toMatchObject({ args: created.args, context: created.context });
    const truncated = lines.filter((l) => l.tool === "get_ticket").at(-1)!;
    expect(truncated.args).toBeNull();
    expect(truncated.context!.masked).toEqual(["args-truncated"]);
    expect(decisionLine.safeParse(JSON.parse(toDecisionLine(JSON.stringify(truncated))!)).success).toBe(true);
    const listed = lines.filter((l) => l.method === "tools/list").at(-1);
    if (listed) expect(listed.args).toBeUndefined();
  });
});
