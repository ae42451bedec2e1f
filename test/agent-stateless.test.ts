/**
 * MCP 2026-07-28 (stateless era) through the agent, beside the handshake era,
 * against real peers: the official SDK v2 client and an upstream on the SDK v2
 * server (test/agent-stateless-peers.ts), the v1 client, the sandbox (a
 * handshake-only upstream), the control plane's agent API, signed bundles and
 * a token issuer (test/agent-proc-harness.ts).
 *
 * Covered: stateless tools/list and tools/call allowed and denied; a call
 * denied on its Mcp-Method / Mcp-Name headers before its body is parsed (the
 * body is not even JSON) with its decision line; HeaderMismatch (-32020, HTTP
 * 400) on name, method, protocol version and a mirrored `x-mcp-header`
 * parameter, none of which reach the upstream; UnsupportedProtocolVersionError;
 * a stateless client in front of a handshake-only upstream (the agent answers
 * -32022 naming the handshake versions, and the v2 client falls back to
 * initialize through the agent); server/discover filtered; cache hints
 * private with ttlMs clamped; a revoked token; the handshake era unchanged.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from "@modelcontextprotocol/client";
import { Client as V1Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as V1Transport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { revocations, tools } from "@/db/schema";
import { publishBundle, republishLiveBundles } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { updateFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createPolicy, policyInput } from "@/lib/policy/service";
import { qualifiedUser } from "@/lib/enforcement/token";
import { MAX_CACHE_TTL_MS } from "@/agent/protocol";
import { uniq } from "./db";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";
import { startV2Upstream, type V2Upstream } from "./agent-stateless-peers";

const V = "2026-07-28";
const META = { "io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } };

let s: AgentStack;
let up: V2Upstream;
let base: string;
let v2Uri: string;
let v2ServerId: string;

/** A token for the v2 server's resource URI. */
const tokenFor = (scope: string, claims: Record<string, unknown> = {}) => s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope, ...claims }, v2Uri);

/** One raw POST to the agent at `path`, with the 2026-07-28 headers given. */
async function post(
  path: string,
  bearer: string,
  body: string | object,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> & { id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } } }> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  const data = type.includes("text/event-stream")
    ? text
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trim())
        .pop()
    : text;
  return { status: res.status, json: data ? (JSON.parse(data) as never) : ({} as never) };
}

const modern = (method: string, name?: string, extra: Record<string, string> = {}) => ({
  "mcp-protocol-version": V,
  "mcp-method": method,
  ...(name !== undefined ? { "mcp-name": name } : {}),
  ...extra,
});
const call = (id: string | number, name: string, args: Record<string, unknown> = {}) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: META } });

async function v2Client(bearer: string, path = "/v2", mode: "auto" | { pin: string } = { pin: V }): Promise<V2Client> {
  const client = new V2Client({ name: "v2-test", version: "1.0.0" }, { versionNegotiation: { mode } });
  await client.connect(new V2Transport(new URL(`${base}${path}`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  return client;
}

async function v1Client(bearer: string, path = "/v2"): Promise<V1Client> {
  const client = new V1Client({ name: "v1-test", version: "1.0.0" });
  await client.connect(new V1Transport(new URL(`${base}${path}`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  return client;
}

/** A long-lived SSE answer (subscriptions/listen) read as it arrives. */
async function openStream(
  path: string,
  bearer: string,
  body: object,
  headers: Record<string, string>,
): Promise<{ status: number; events: Record<string, unknown>[]; json: Record<string, unknown> | null; close(): void }> {
  const ac = new AbortController();
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    signal: ac.signal,
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify(body),
  });
  const events: Record<string, unknown>[] = [];
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream"))
    return { status: res.status, events, json: JSON.parse(await res.text()) as Record<string, unknown>, close: () => ac.abort() };
  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let at: number;
      while ((at = buf.search(/\r?\n\r?\n/)) >= 0) {
        const data = buf
          .slice(0, at)
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        buf = buf.slice(at).replace(/^\r?\n\r?\n/, "");
        if (data) events.push(JSON.parse(data) as Record<string, unknown>);
      }
    }
  })().catch(() => {});
  return { status: res.status, events, json: null, close: () => ac.abort() };
}

/**
 * What the agent forwarded to the upstream for callers since `from`: the stateless path sends every
 * request with its `Mcp-Method` header. Left out: the agent's own catalogue check (agent/drift.ts, on
 * every new bundle, concurrent with the tests: a handshake-era client, no `Mcp-Method` header: its
 * initialize, lists, GET stream and DELETE) and its `server/discover` probe of the upstream's revisions
 * (once per bundle, at the first forwarded request).
 */
const upstreamSince = (from: number) => up.log.slice(from).filter((l) => l.header !== null && !l.probe);

async function decisionLine(id: unknown) {
  return (await s.walLines()).find((l) => l.id === id);
}

beforeAll(async () => {
  s = await startAgentStack();
  base = `http://127.0.0.1:${new URL(s.resourceUri).port}`;
  v2Uri = `${base}/v2`;
  up = await startV2Upstream();
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({
      tenantId: s.tenantA,
      name: uniq("Stateless "),
      resourceUri: v2Uri,
      upstreamUrl: up.url,
      scopes: ["tickets:read", "tickets:write"],
      issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  v2ServerId = server!.id;
  await importCatalog(s.owner.ctx, v2ServerId);
  // Every tool approved but delete_project (not in the catalogue: denied on the headers alone).
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, v2ServerId)))
    if (tool.name !== "delete_project") await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, v2ServerId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "query_region"], "tickets:write": ["get_ticket"] } });
  // Resources and prompts: readers (tickets:read) may list and read them, and get prompts, but never the "secret" ticket's triage.
  await createPolicy(
    s.owner.ctx,
    policyInput.parse({
      tenantId: s.tenantA,
      serverId: v2ServerId,
      name: "readers",
      kind: "cedar",
      cedar: `permit (principal, action in [Action::"read_resource", Action::"list_resources", Action::"list_resource_templates", Action::"get_prompt", Action::"list_prompts"], resource) when { context.scopes.contains("tickets:read") };`,
    }),
  );
  await createPolicy(
    s.owner.ctx,
    policyInput.parse({
      tenantId: s.tenantA,
      serverId: v2ServerId,
      name: "no secret triage",
      kind: "cedar",
      cedar: `forbid (principal, action == Action::"get_prompt", resource) when { context.args has id && context.args.id == "secret" };`,
    }),
  );
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, v2ServerId] });
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "stateless" }, s.kek);
  await s.waitRevision(rev + 1);
}, 180_000);

afterAll(async () => {
  await up?.stop();
  await s?.stop();
});

describe("the stateless era (2026-07-28) through the agent", () => {
  it("v2 client: tools/list filtered per caller, an allowed call answered, a denied one refused and never forwarded", async () => {
    const client = await v2Client(await tokenFor("tickets:read"));
    expect(client.getProtocolEra()).toBe("modern");
    expect(client.getNegotiatedProtocolVersion()).toBe(V);
    const listed = await client.listTools();
    expect(listed.tools.map((t) => t.name).sort()).toEqual(["list_tickets", "query_region"]);
    const ok = await client.callTool({ name: "list_tickets", arguments: { project: "ops" } });
    expect(JSON.stringify(ok.content)).toContain("tickets of ops");
    // The mirrored parameter: the v2 client sends Mcp-Param-Region, the agent checks it and forwards it, the upstream checks it again.
    const region = await client.callTool({ name: "query_region", arguments: { region: "eu-west", query: "x" } });
    expect(JSON.stringify(region.content)).toContain("region=eu-west");
    const from = up.log.length;
    await expect(client.callTool({ name: "delete_project", arguments: { project: "ops" } })).rejects.toMatchObject({ code: -32003 });
    // A tool the caller lacks a scope for: 403 insufficient_scope naming the scope that grants it (RFC 6750 step-up), as in the handshake era.
    const bearer = await tokenFor("tickets:read");
    const stepUp = await fetch(`${base}/v2`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...modern("tools/call", "get_ticket") },
      body: JSON.stringify(call("s", "get_ticket", { id: "T-1" })),
    });
    expect(stepUp.status).toBe(403);
    expect(stepUp.headers.get("www-authenticate")).toContain('scope="tickets:write"');
    expect(upstreamSince(from).some((l) => l.method === "tools/call")).toBe(false);
    await client.close();
  });

  it("denies a call on its Mcp-Method and Mcp-Name headers before parsing the body (the body is not even JSON), with its decision line", async () => {
    const bearer = await tokenFor("tickets:read tickets:write");
    const from = up.log.length;
    const body = '{"jsonrpc":"2.0","id":"hf-1","method":"tools/call","params":{"name":"delete_project", this is not JSON';
    const r = await post("/v2", bearer, body, modern("tools/call", "delete_project"));
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: "hf-1", error: { code: -32003, message: "Denied by policy" } });
    expect(String(r.json.error!.data!.reason)).toContain("decided on the Mcp-Method and Mcp-Name headers");
    const line = await decisionLine(r.json.error!.data!.decisionId);
    expect(line).toMatchObject({ method: "tools/call", tool: "delete_project", outcome: "deny", serverId: v2ServerId });
    expect(upstreamSince(from)).toEqual([]);
  });

  it("answers HeaderMismatch (-32020, HTTP 400) when the body disagrees with Mcp-Name, Mcp-Method, MCP-Protocol-Version or a mirrored parameter; nothing reaches the upstream", async () => {
    const bearer = await tokenFor("tickets:read tickets:write");
    const from = up.log.length;
    const cases: [string, object, Record<string, string>][] = [
      ["name", call(1, "get_ticket", { id: "T-1" }), modern("tools/call", "list_tickets")],
      ["name missing", call(2, "list_tickets"), modern("tools/call")],
      ["method", call(3, "list_tickets"), modern("tools/list")],
      ["method missing", call(4, "list_tickets"), { "mcp-protocol-version": V, "mcp-name": "list_tickets" }],
      ["version", call(5, "list_tickets"), modern("tools/call", "list_tickets", { "mcp-protocol-version": "2025-11-25" })],
      ["param", call(6, "query_region", { region: "eu-west" }), modern("tools/call", "query_region", { "mcp-param-region": "us-east" })],
      ["param missing", call(7, "query_region", { region: "eu-west" }), modern("tools/call", "query_region")],
      ["param base64", call(8, "query_region", { region: "ü" }), modern("tools/call", "query_region", { "mcp-param-region": "=?base64?w7w?=" })],
    ];
    for (const [what, body, headers] of cases) {
      const r = await post("/v2", bearer, body, headers);
      expect(r.status, what).toBe(400);
      expect(r.json.error?.code, `${what}: ${JSON.stringify(r.json)}`).toBe(what === "version" ? -32020 : -32020);
      expect(r.json.id, what).toBe((body as { id: number }).id);
      const line = await decisionLine(r.json.error!.data!.decisionId);
      expect(line, what).toMatchObject({ outcome: "deny", serverId: v2ServerId });
    }
    // A Base64-encoded name or parameter that decodes to the body's value is accepted.
    const ok = await post("/v2", bearer, call(9, "query_region", { region: "ü" }), modern("tools/call", "=?base64?cXVlcnlfcmVnaW9u?=", { "mcp-param-region": "=?base64?w7w=?=" }));
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    expect(JSON.stringify(ok.json.result)).toContain("region=ü");
    expect(
      upstreamSince(from)
        .filter((l) => l.method === "tools/call")
        .map((l) => l.name),
    ).toEqual(["query_region"]);
  });

  it("answers UnsupportedProtocolVersionError (-32022, HTTP 400) for a revision it does not serve, and a missing envelope with -32602", async () => {
    const bearer = await tokenFor("tickets:read");
    const later = "2027-01-01";
    const r = await post(
      "/v2",
      bearer,
      { jsonrpc: "2.0", id: "v", method: "tools/list", params: { _meta: { ...META, "io.modelcontextprotocol/protocolVersion": later } } },
      modern("tools/list", undefined, { "mcp-protocol-version": later }),
    );
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ id: "v", error: { code: -32022, data: { requested: later } } });
    // A stateless-era revision the agent does not serve: the stateless revisions it serves (as server/discover lists them).
    expect(r.json.error!.data!.supported).toEqual(["2026-07-28"]);
    // The agent's own answer (with its decision line), not the upstream's.
    expect(await decisionLine(r.json.error!.data!.decisionId)).toMatchObject({ outcome: "deny", method: "tools/list" });
    const noEnvelope = await post("/v2", bearer, { jsonrpc: "2.0", id: "e", method: "tools/list", params: {} }, modern("tools/list"));
    expect(noEnvelope.status).toBe(400);
    expect(noEnvelope.json).toMatchObject({ id: "e", error: { code: -32602 } });
  });

  it("conformance gaps (issue 11): removed and unknown methods get 404 / -32601 with their id and a deny line (never forwarded); a version that is not a date gets -32022 with its id; HeaderMismatch comes before a denial on the headers", async () => {
    const bearer = await tokenFor("tickets:read tickets:write");
    const from = up.log.length;
    for (const [i, method] of ["logging/setLevel", "resources/subscribe", "resources/unsubscribe", "unknown/method", "ping", "initialize"].entries()) {
      const r = await post("/v2", bearer, { jsonrpc: "2.0", id: 500 + i, method, params: { _meta: META } }, modern(method));
      expect(r.status, `${method}: ${JSON.stringify(r.json)}`).toBe(404);
      expect(r.json, method).toMatchObject({ id: 500 + i, error: { code: -32601 } });
      expect(await decisionLine(r.json.error!.data!.decisionId), method).toMatchObject({ outcome: "deny", method, serverId: v2ServerId });
    }
    expect(upstreamSince(from)).toEqual([]);
    const bad = "v999.0.0";
    const v = await post(
      "/v2",
      bearer,
      { jsonrpc: "2.0", id: 301, method: "server/discover", params: { _meta: { ...META, "io.modelcontextprotocol/protocolVersion": bad } } },
      modern("server/discover", undefined, { "mcp-protocol-version": bad }),
    );
    expect(v.status).toBe(400);
    expect(v.json).toMatchObject({ id: 301, error: { code: -32022, data: { supported: ["2026-07-28"], requested: bad } } });
    // delete_project is denied on the headers alone, but the body names list_tickets: the disagreement is what is reported.
    const clash = await post("/v2", bearer, call(302, "list_tickets"), modern("tools/call", "delete_project"));
    expect(clash.status).toBe(400);
    expect(clash.json).toMatchObject({ id: 302, error: { code: -32020 } });
    // A method header no one knows (values are case-sensitive) over a tools/list body: HeaderMismatch, not Method not found.
    const upper = await post("/v2", bearer, { jsonrpc: "2.0", id: 303, method: "tools/list", params: { _meta: META } }, modern("TOOLS/LIST"));
    expect(upper.status).toBe(400);
    expect(upper.json).toMatchObject({ id: 303, error: { code: -32020 } });
  });

  it("completion/complete (issue 11): decided on the body's ref (the prompt it names), never denied on headers that carry no name", async () => {
    const bearer = await tokenFor("tickets:read tickets:write");
    const body = { jsonrpc: "2.0", id: "cc", method: "completion/complete", params: { ref: { type: "ref/prompt", name: "triage" }, argument: { name: "id", value: "T" }, _meta: META } };
    const r = await post("/v2", bearer, body, modern("completion/complete"));
    const line = (await s.walLines()).filter((l) => l.method === "completion/complete").pop();
    expect(line, JSON.stringify(r.json)).toMatchObject({ tool: "triage", serverId: v2ServerId });
    expect(String(line!.reason)).not.toContain("decided on the Mcp-Method and Mcp-Name headers");
  });

  it("has no session and no GET stream in the stateless era: Mcp-Session-Id ignored (never forwarded, none given), GET 405, a batch refused", async () => {
    const bearer = await tokenFor("tickets:read");
    const from = up.log.length;
    const res = await fetch(`${base}/v2`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": "not-a-session", ...modern("tools/list") },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toBeNull();
    expect(upstreamSince(from).filter((l) => l.method === "tools/list").length).toBe(1);
    const get = await fetch(`${base}/v2`, { headers: { authorization: `Bearer ${bearer}`, accept: "text/event-stream", "mcp-protocol-version": V } });
    expect(get.status).toBe(405);
    const batch = await post("/v2", bearer, [{ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }], modern("tools/list"));
    expect(batch.status).toBe(400);
    expect(batch.json.error?.code).toBe(-32600);
  });

  it("server/discover: the upstream's answer, filtered (revisions the agent speaks, capabilities it decides), private, ttlMs clamped", async () => {
    const bearer = await tokenFor("tickets:read");
    const r = await post("/v2", bearer, { jsonrpc: "2.0", id: "d", method: "server/discover", params: { _meta: META } }, modern("server/discover"));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const result = r.json.result!;
    expect(result.supportedVersions).toEqual([V]);
    expect(Object.keys(result.capabilities as object).sort()).toEqual(["logging", "prompts", "resources", "tools"]);
    expect(result.cacheScope).toBe("private");
    // The upstream said an hour and public.
    expect(result.ttlMs).toBeGreaterThan(0);
    expect(result.ttlMs).toBeLessThanOrEqual(MAX_CACHE_TTL_MS);
    expect((await s.walLines()).some((l) => l.method === "server/discover" && l.outcome === "allow" && String(l.reason).includes("experimental"))).toBe(true);
  });

  it("marks every filtered list private and clamps ttlMs; a list filtered for one caller is not another's", async () => {
    const reader = await tokenFor("tickets:read");
    const writer = await tokenFor("tickets:write", { sub: "bob" });
    const list = (bearer: string) => post("/v2", bearer, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }, modern("tools/list"));
    const a = await list(reader);
    const b = await list(writer);
    for (const r of [a, b]) {
      expect(r.json.result!.cacheScope).toBe("private");
      expect(r.json.result!.ttlMs).toBeLessThanOrEqual(MAX_CACHE_TTL_MS);
    }
    expect((a.json.result!.tools as { name: string }[]).map((t) => t.name).sort()).toEqual(["list_tickets", "query_region"]);
    expect((b.json.result!.tools as { name: string }[]).map((t) => t.name)).toEqual(["get_ticket"]);
  });

  it("a stateless client in front of a handshake-only upstream: -32022 naming the handshake versions, nothing forwarded; the v2 client falls back to initialize", async () => {
    const bearer = await s.token("tickets:read");
    const r = await post("/mcp", bearer, { jsonrpc: "2.0", id: "old", method: "tools/list", params: { _meta: META } }, modern("tools/list"));
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ id: "old", error: { code: -32022, data: { supported: ["2025-11-25", "2025-06-18"], requested: V } } });
    const client = await v2Client(bearer, "/mcp", "auto");
    expect(client.getProtocolEra()).toBe("legacy");
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["get_ticket", "list_tickets"]);
    await client.close();
  });

  it("refuses a revoked token on a stateless request (401 invalid_token)", async () => {
    const bearer = await tokenFor("tickets:read", { sub: "carol" });
    expect((await post("/v2", bearer, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: META } }, modern("tools/list"))).status).toBe(200);
    const rev = s.agent.sync.current!.content.manifest.revision;
    await s.t.db.transaction(async (tx) => {
      await tx
        .insert(revocations)
        .values({ id: newId("revocation"), tenantId: s.tenantA, userId: qualifiedUser(s.issuer.issuer, "carol"), before: new Date(Date.now() + 2000), createdBy: s.owner.user.id });
      await republishLiveBundles(tx, s.owner.actor, s.kek, [v2ServerId], "revoke carol");
    });
    await s.waitRevision(rev + 1);
    const res = await fetch(`${base}/v2`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...modern("tools/list") },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: { _meta: META } }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("revoked");
  });

  it("resources and prompts under policy in both eras: lists filtered and private, reads and prompts decided with the URI or prompt name in the decision line", async () => {
    const reader = await tokenFor("tickets:read");
    for (const client of [await v2Client(reader), await v1Client(reader)]) {
      expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(["docs://readme"]);
      expect(JSON.stringify((await client.readResource({ uri: "docs://readme" })).contents)).toContain("hello");
      expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(["triage"]);
      expect(JSON.stringify((await client.getPrompt({ name: "triage", arguments: { id: "T-1" } })).messages)).toContain("triage T-1");
      await expect(client.getPrompt({ name: "triage", arguments: { id: "secret" } })).rejects.toMatchObject({ code: -32003 });
      await client.close();
    }
    const lines = await s.walLines();
    expect(lines.filter((l) => l.method === "prompts/get" && l.tool === "triage" && l.outcome === "deny").length).toBe(2);
    expect(lines.some((l) => l.method === "resources/read" && l.tool === "docs://readme" && l.outcome === "allow")).toBe(true);
    const read = await post("/v2", reader, { jsonrpc: "2.0", id: "r", method: "resources/read", params: { uri: "docs://readme", _meta: META } }, modern("resources/read", "docs://readme"));
    expect(read.json.result).toMatchObject({ cacheScope: "private" });
    expect(read.json.result!.ttlMs).toBeLessThanOrEqual(MAX_CACHE_TTL_MS);
    // Without tickets:read: the read is denied on its headers, the lists are empty.
    const writer = await tokenFor("tickets:write");
    const from = up.log.length;
    const denied = await post("/v2", writer, '{"jsonrpc":"2.0","id":"rd","method":"resources/read",', modern("resources/read", "docs://readme"));
    expect(denied.json).toMatchObject({ id: "rd", error: { code: -32003 } });
    expect(await decisionLine(denied.json.error!.data!.decisionId)).toMatchObject({ method: "resources/read", tool: "docs://readme", outcome: "deny" });
    expect(upstreamSince(from)).toEqual([]);
    const none = await post("/v2", writer, { jsonrpc: "2.0", id: 1, method: "resources/list", params: { _meta: META } }, modern("resources/list"));
    expect(none.json.result).toMatchObject({ resources: [], cacheScope: "private" });
  });

  it("subscriptions/listen: subscriptions decided, notifications screened against the bundle in force when they arrive (a revoked caller hears nothing more)", async () => {
    const listen = (id: string, notifications: object) => ({ jsonrpc: "2.0", id, method: "subscriptions/listen", params: { notifications, _meta: META } });
    // A caller who may not read the resource cannot subscribe to it: the whole request is denied.
    const writer = await tokenFor("tickets:write");
    const refused = await openStream("/v2", writer, listen("l0", { resourceSubscriptions: ["docs://readme"] }), modern("subscriptions/listen"));
    expect(refused.json).toMatchObject({ id: "l0", error: { code: -32003 } });
    const dave = await tokenFor("tickets:read", { sub: "dave" });
    const stream = await openStream("/v2", dave, listen("l1", { toolsListChanged: true, resourceSubscriptions: ["docs://readme"] }), modern("subscriptions/listen"));
    try {
      expect(stream.status).toBe(200);
      await until(() => stream.events.some((e) => e.method === "notifications/subscriptions/acknowledged"));
      up.handler.notify.resourceUpdated("docs://readme");
      up.handler.notify.toolsChanged();
      await until(() => stream.events.some((e) => e.method === "notifications/resources/updated") && stream.events.some((e) => e.method === "notifications/tools/list_changed"));
      const heard = stream.events.length;
      const rev = s.agent.sync.current!.content.manifest.revision;
      await s.t.db.transaction(async (tx) => {
        await tx
          .insert(revocations)
          .values({ id: newId("revocation"), tenantId: s.tenantA, userId: qualifiedUser(s.issuer.issuer, "dave"), before: new Date(Date.now() + 2000), createdBy: s.owner.user.id });
        await republishLiveBundles(tx, s.owner.actor, s.kek, [v2ServerId], "revoke dave");
      });
      await s.waitRevision(rev + 1);
      up.handler.notify.resourceUpdated("docs://readme");
      up.handler.notify.toolsChanged();
      await new Promise((r) => setTimeout(r, 500));
      expect(stream.events.length).toBe(heard);
    } finally {
      stream.close();
    }
  });

  it("the handshake era is unchanged: the v1 client lists and calls through the same server, with a session", async () => {
    const client = await v1Client(await tokenFor("tickets:read"));
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_tickets", "query_region"]);
    const ok = await client.callTool({ name: "list_tickets", arguments: {} });
    expect(JSON.stringify(ok.content)).toContain("tickets of every project");
    // Not in the approved catalogue: denied (a tool the caller lacks a scope for answers 403 insufficient_scope instead).
    const denied = await client.callTool({ name: "delete_project", arguments: { project: "ops" } }).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: -32003 });
    await client.close();
  });
});
