/**
 * The agent's request surface against real peers (test/agent-proc-harness.ts:
 * database, control plane agent API, signed bundles, the sandbox upstream, a
 * real token issuer): JSON-RPC ids, the tools/list filter on every stream,
 * bounds on arguments (and the event loop staying free meanwhile), routing by
 * host and path, session ids bound to their caller across restarts, and the
 * HTTP edges (headers, content types, methods).
 */
import { request as httpRequest, createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { decisions, maskingRules, tools } from "@/db/schema";
import { publishBundle, republishLiveBundles } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { createEnrollmentToken, updateFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import { MAX_NODES } from "@/agent/bounds";
import { SESSION_KEY_FILE } from "@/agent/session";
import { freePort } from "./sandbox";
import { uniq } from "./db";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";

let s: AgentStack & { extraTenantIds: string[] };
let port: number;
let front: { url: string; close(): Promise<void> };
/** A server at path /replay whose upstream replays its answers on every GET stream (resumption, or a hostile upstream). */
let replayServerId: string;
/** Tenant B's own server at the same path as the stack's, on another host name of the same agent. */
let hostBServerId: string;
let hostBUri: string;

interface Raw {
  status: number;
  headers: IncomingMessage["headers"];
  text: string;
}

/** One HTTP request to the agent with exactly these headers (Host included), read whole or for `readMs` (open streams). */
function raw(method: string, path: string, opts: RawOptions = {}): Promise<Raw> {
  return rawAt(port, method, path, opts);
}

interface RawOptions {
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  readMs?: number;
  rawHeaders?: string[];
}

function rawAt(port: number, method: string, path: string, opts: RawOptions = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { host: `127.0.0.1:${port}`, ...opts.headers };
    let answered = false;
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers: opts.rawHeaders ?? headers, setHost: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let timer: NodeJS.Timeout | null = null;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") });
      };
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", done);
      res.on("error", done);
      if (opts.readMs) {
        timer = setTimeout(() => {
          res.destroy();
          done();
        }, opts.readMs);
      }
    });
    // The agent may close the connection while a refused body is still being written: the answer counts.
    req.on("error", (err) => (answered ? undefined : reject(err)));
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** The JSON-RPC messages of a JSON or SSE answer. */
function messages(r: Raw): Record<string, unknown>[] {
  const type = String(r.headers["content-type"] ?? "");
  if (type.includes("text/event-stream")) {
    return r.text
      .split(/\r?\n\r?\n/)
      .map((e) =>
        e
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n"),
      )
      .filter(Boolean)
      .map((d) => JSON.parse(d) as Record<string, unknown>);
  }
  if (!r.text) return [];
  const j = JSON.parse(r.text) as unknown;
  return (Array.isArray(j) ? j : [j]) as Record<string, unknown>[];
}

const mcpHeaders = (bearer: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${bearer}`,
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  ...extra,
});
const initialize = (id: string | number = "init") => ({
  jsonrpc: "2.0",
  id,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "surface-test", version: "1" } },
});

/** Opens an MCP session at `path` (initialize + initialized); returns the session id the client was given. */
async function openSession(bearer: string, path = "/mcp", host?: string): Promise<string> {
  const h: Record<string, string> = host ? { host } : {};
  const init = await raw("POST", path, { headers: mcpHeaders(bearer, h), body: JSON.stringify(initialize()) });
  expect(init.status, init.text).toBe(200);
  const sid = init.headers["mcp-session-id"] as string;
  expect(sid).toBeTruthy();
  const note = await raw("POST", path, { headers: mcpHeaders(bearer, { ...h, "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
  expect(note.status).toBe(202);
  return sid;
}

/**
 * Every decision the agent logged: what is still in its data dir, then what the shipper
 * already delivered (a segment is deleted only once the control plane stored it).
 */
async function loggedDecisions(): Promise<{ id: string; serverId: string; method: string; tool: string | null; outcome: string }[]> {
  const onDisk = await s.walLines();
  const shipped = await s.t.db.select({ id: decisions.id, serverId: decisions.serverId, method: decisions.method, tool: decisions.tool, outcome: decisions.outcome }).from(decisions);
  const seen = new Set(onDisk.map((l) => l.id));
  return [...onDisk, ...shipped.filter((d) => !seen.has(d.id))];
}

/** Requests that reached the upstream from clients (not the agent's own catalogue checks). */
const callerRequests = async () => (await s.upstreamLog()).filter((l) => l.client !== "mandate-catalog").length;

const toolNames = (m: Record<string, unknown> | undefined) => ((m?.result as { tools?: { name: string }[] } | undefined)?.tools ?? []).map((t) => t.name).sort();

/**
 * An upstream in front of the sandbox that records what it answered on each
 * session's POSTs and replays it on any GET of that session (as an upstream
 * with resumability does after Last-Event-ID), adding an answer to an id
 * nobody sent and a server-initiated request.
 */
async function startReplayUpstream(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const answered = new Map<string, string[]>();
  const server: Server = createHttpServer((req, res) => {
    void (async () => {
      const sid = req.headers["mcp-session-id"];
      if (req.method === "GET") {
        const list = typeof sid === "string" ? answered.get(sid) : undefined;
        if (!list) return void res.writeHead(405).end();
        const after = Number(req.headers["last-event-id"] ?? 0) || 0;
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        list.forEach((data, i) => {
          if (i + 1 > after) res.write(`id: ${i + 1}\nevent: message\ndata: ${data}\n\n`);
        });
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: "never-sent", result: { tools: [{ name: "delete_project", inputSchema: { type: "object" } }] } })}\n\n`);
        res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: "srv-1", method: "sampling/createMessage", params: { messages: [], maxTokens: 1 } })}\n\n`);
        res.end();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      // Hostile answers on request: a JSON body over the agent's bound, a success in a type it cannot screen.
      const asked = Buffer.concat(chunks).toString("utf8");
      if (asked.includes('"id":"huge-json"')) {
        res.writeHead(200, { "content-type": "application/json" });
        const item = JSON.stringify({ name: "delete_project", description: "x".repeat(1000) });
        res.write('{"jsonrpc":"2.0","id":"huge-json","result":{"tools":[');
        for (let i = 0; i < 17_000; i++) res.write(`${i ? "," : ""}${item}`);
        return void res.end("]}}");
      }
      if (asked.includes('"id":"plain"')) return void res.writeHead(200, { "content-type": "text/plain" }).end('{"jsonrpc":"2.0","id":"plain","result":{"tools":[{"name":"delete_project"}]}}');
      const headers: Record<string, string> = {};
      for (const h of ["content-type", "accept", "mcp-session-id", "mcp-protocol-version"]) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
      const up = await fetch(target, { method: req.method, headers, body: req.method === "POST" ? Buffer.concat(chunks) : undefined });
      const text = await up.text();
      const session = up.headers.get("mcp-session-id") ?? (typeof sid === "string" ? sid : null);
      if (session && req.method === "POST") {
        const list = answered.get(session) ?? [];
        for (const event of text.split(/\r?\n\r?\n/)) {
          const data = event
            .split(/\r?\n/)
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim())
            .join("\n");
          if (data) list.push(data);
        }
        answered.set(session, list);
      }
      const out: Record<string, string> = {};
      for (const h of ["content-type", "mcp-session-id"]) {
        const v = up.headers.get(h);
        if (v) out[h] = v;
      }
      res.writeHead(up.status, out).end(text);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  return {
    url,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A server of `tenantId` with the sandbox's tools approved and the read/write scopes mapped. */
async function addServer(tenantId: string, resourceUri: string, upstreamUrl: string): Promise<string> {
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Surface "),
      resourceUri,
      upstreamUrl,
      scopes: ["tickets:read", "tickets:write"],
      issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const id = server!.id;
  await importCatalog(s.owner.ctx, id);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, id))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, id, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  return id;
}

beforeAll(async () => {
  s = await startAgentStack();
  port = Number(new URL(s.resourceUri).port);
  front = await startReplayUpstream(s.sandbox.url);
  replayServerId = await addServer(s.tenantA, `http://127.0.0.1:${port}/replay`, front.url);
  hostBUri = `http://localhost:${port}/mcp`;
  hostBServerId = await addServer(s.tenantB, hostBUri, s.sandbox.url);
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, replayServerId, hostBServerId] });
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "surface" }, s.kek);
  await s.waitRevision(rev + 1);
  // Every argument of create_ticket under "items" is hidden in decision lines: the masking the hostile call aimed at.
  await s.t.db.transaction(async (tx) => {
    await tx.insert(maskingRules).values([{ id: newId("mask"), serverId: s.serverId, tool: "*", paths: ["items.*", "items.*.ssn"], mode: "hide", createdBy: s.owner.user.id }]);
    await republishLiveBundles(tx, s.owner.actor, s.kek, [s.serverId], "masking for the surface test");
  });
  await s.waitRevision(rev + 2);
}, 180_000);

afterAll(async () => {
  await restarted?.stop();
  await front?.close();
  await s?.stop();
});

let restarted: RunningAgent | null = null;

describe("agent request surface", () => {
  it("refuses JSON-RPC ids that are not strings or numbers (-32600), before anything reaches the upstream", async () => {
    const bearer = await s.token("tickets:read");
    const sid = await openSession(bearer);
    const before = await callerRequests();
    for (const id of [{}, [1], true, null, { toString: "x" }]) {
      const r = await raw("POST", "/mcp", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list" }) });
      expect(r.status, JSON.stringify(id)).toBe(400);
      const [m] = messages(r);
      expect(m).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32600 } });
      // Never an unfiltered catalogue.
      expect(r.text).not.toContain("delete_project");
    }
    expect(await callerRequests()).toBe(before);
    // A string or number id is listed, filtered.
    const ok = await raw("POST", "/mcp", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/list" }) });
    expect(toolNames(messages(ok).find((m) => m.id === 7))).toEqual(["get_ticket", "list_tickets"]);
  });

  it("writes no tools/list answer whose list decision line did not reach the disk (the write overlaps the serialization, never the answer)", async () => {
    const bearer = await s.token("tickets:read");
    const sid = await openSession(bearer);
    const wal = s.agent.wal;
    const append = wal.append.bind(wal);
    wal.append = (rec) => ((rec as { method?: unknown }).method === "tools/list" ? Promise.reject(new Error("disk full (test)")) : append(rec));
    try {
      const r = await raw("POST", "/mcp", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }) });
      expect(messages(r).find((m) => m.id === 9)).toBeUndefined();
      expect(r.text).not.toContain("get_ticket");
    } finally {
      wal.append = append;
    }
    const ok = await raw("POST", "/mcp", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id: 10, method: "tools/list" }) });
    expect(toolNames(messages(ok).find((m) => m.id === 10))).toEqual(["get_ticket", "list_tickets"]);
  });

  it("filters a tools/list answer replayed on a GET stream (Last-Event-ID or standalone), drops answers to ids never sent, passes server requests", async () => {
    const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "tickets:read" }, `http://127.0.0.1:${port}/replay`);
    const sid = await openSession(bearer, "/replay");
    const list = await raw("POST", "/replay", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id: "L1", method: "tools/list" }) });
    expect(toolNames(messages(list).find((m) => m.id === "L1"))).toEqual(["get_ticket", "list_tickets"]);
    const resumptions: Record<string, string>[] = [{ "last-event-id": "1" }, {}];
    for (const extra of resumptions) {
      const get = await raw("GET", "/replay", { headers: { authorization: `Bearer ${bearer}`, accept: "text/event-stream", "mcp-session-id": sid, ...extra }, readMs: 3000 });
      expect(get.status).toBe(200);
      const got = messages(get);
      const replayed = got.find((m) => m.id === "L1");
      expect(replayed, get.text).toBeDefined();
      expect(toolNames(replayed)).toEqual(["get_ticket", "list_tickets"]);
      expect(get.text).not.toContain("delete_project");
      expect(got.some((m) => m.id === "never-sent")).toBe(false);
      expect(got.find((m) => m.id === "srv-1")).toMatchObject({ method: "sampling/createMessage" });
    }
    // Another caller cannot read that session's stream at all.
    const mallory = await s.issuer.sign({ sub: "mallory", tenant: s.tenantA, client_id: "test-client", scope: "tickets:read" }, `http://127.0.0.1:${port}/replay`);
    const other = await raw("GET", "/replay", { headers: { authorization: `Bearer ${mallory}`, accept: "text/event-stream", "mcp-session-id": sid }, readMs: 3000 });
    expect(other.status).toBe(404);
  });

  it("refuses an upstream answer over 16 MiB and a success it cannot screen (502), passing nothing on", async () => {
    const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "tickets:read" }, `http://127.0.0.1:${port}/replay`);
    const sid = await openSession(bearer, "/replay");
    for (const id of ["huge-json", "plain"]) {
      const r = await raw("POST", "/replay", { headers: mcpHeaders(bearer, { "mcp-session-id": sid }), body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list" }) });
      expect(r.status, id).toBe(502);
      expect(r.text).not.toContain("delete_project");
    }
  });

  it("bounds arguments before any work: a 160,000-item call is refused at once with a deny decision while /healthz and a normal call keep their normal time", async () => {
    const bearer = await s.token("tickets:read tickets:write");
    const sid = await openSession(bearer);
    const h = mcpHeaders(bearer, { "mcp-session-id": sid });
    const normalCall = async () => {
      const t0 = performance.now();
      const r = await raw("POST", "/mcp", {
        headers: h,
        body: JSON.stringify({ jsonrpc: "2.0", id: `n-${Math.random()}`, method: "tools/call", params: { name: "get_ticket", arguments: { id: "T-100" } } }),
      });
      expect(r.status).toBe(200);
      return performance.now() - t0;
    };
    const health = async () => {
      const t0 = performance.now();
      expect((await raw("GET", "/healthz")).status).toBe(200);
      return performance.now() - t0;
    };
    // Normal times first (the machine is shared: the bounds below are relative to them, with a floor).
    const baseHealth = Math.max(...(await Promise.all([health(), health(), health()])));
    const baseCall = Math.max(await normalCall(), await normalCall());

    for (const items of [20_000, 160_000]) {
      const hostile = JSON.stringify({
        jsonrpc: "2.0",
        id: `h-${items}`,
        method: "tools/call",
        params: { name: "create_ticket", arguments: { items: Array.from({ length: items }, (_, i) => ({ ssn: String(i).padStart(6, "0") })) } },
      });
      const t0 = performance.now();
      const during: Promise<number>[] = [];
      const refused = raw("POST", "/mcp", { headers: h, body: hostile }).then((r) => ({ r, ms: performance.now() - t0 }));
      for (let i = 0; i < 3; i++) during.push(health(), normalCall());
      const [{ r, ms }, times] = await Promise.all([refused, Promise.all(during)]);
      expect(r.status).toBe(400);
      const [m] = messages(r);
      expect(m).toMatchObject({ id: null, error: { code: -32600 } });
      expect((m!.error as { message: string }).message).toContain(`more than ${MAX_NODES} values`);
      console.log(
        `[surface] ${items} items (${(hostile.length / 1e6).toFixed(1)} MB) refused in ${ms.toFixed(0)} ms; /healthz and a call meanwhile ${Math.max(...times).toFixed(0)} ms (normal ${baseHealth.toFixed(0)} / ${baseCall.toFixed(0)} ms)`,
      );
      expect(ms).toBeLessThan(Math.max(2000, 10 * baseCall));
      expect(Math.max(...times)).toBeLessThan(Math.max(1500, 5 * Math.max(baseHealth, baseCall)));
      // The refusal is a deny decision in the log, durable before the answer.
      const decisionId = (m!.error as { data: { decisionId: string } }).data.decisionId;
      expect((await loggedDecisions()).find((l) => l.id === decisionId)).toMatchObject({ outcome: "deny", serverId: s.serverId });
    }

    // Depth: 40 levels of arguments are refused, as a deny decision naming the tool.
    let deep: unknown = "x";
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const r = await raw("POST", "/mcp", { headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: "deep", method: "tools/call", params: { name: "create_ticket", arguments: deep } }) });
    expect(r.status).toBe(400);
    expect(messages(r)[0]).toMatchObject({ error: { code: -32600 } });
    // 4 MB of brackets (1.5 s for JSON.parse alone) is refused before parsing.
    const t0 = performance.now();
    const brackets = await raw("POST", "/mcp", { headers: h, body: "[".repeat(2_000_000) + "]".repeat(1_000_000) });
    expect(brackets.status).toBe(400);
    console.log(`[surface] 3 MB of nested brackets refused in ${(performance.now() - t0).toFixed(0)} ms`);
  }, 120_000);

  it("masks a call's arguments in linear time (many masked paths)", async () => {
    const { maskArgs } = await import("@/lib/enforcement/masking");
    const rules = [{ serverId: "srv", tool: "*", paths: ["items.*", "items.*.ssn"], mode: "hide" as const }];
    const time = (n: number) => {
      const args = { items: Array.from({ length: n }, (_, i) => ({ ssn: String(i) })) };
      const t0 = performance.now();
      const r = maskArgs(args, rules as never, "srv", "t");
      expect(r.masked.length).toBe(n);
      return performance.now() - t0;
    };
    const small = time(1000);
    const large = time(32_000);
    console.log(`[surface] masking 1,000 paths ${small.toFixed(1)} ms, 32,000 paths ${large.toFixed(1)} ms`);
    // Linear: about a second on the shared machine. The quadratic match compared each of the 64,000
    // paths with every one masked before it (about 10^9 comparisons: minutes here).
    expect(large).toBeLessThan(10_000);
  });

  it("routes by host and path: two servers at /mcp on two hosts each get their own server and metadata; an unknown host gets 404", async () => {
    const prmA = await raw("GET", "/.well-known/oauth-protected-resource/mcp");
    expect(prmA.status).toBe(200);
    expect(JSON.parse(prmA.text)).toMatchObject({ resource: s.resourceUri });
    const prmB = await raw("GET", "/.well-known/oauth-protected-resource/mcp", { headers: { host: `localhost:${port}` } });
    expect(prmB.status).toBe(200);
    expect(JSON.parse(prmB.text)).toMatchObject({ resource: hostBUri });
    expect((await raw("GET", "/.well-known/oauth-protected-resource/mcp", { headers: { host: `evil.example:${port}` } })).status).toBe(404);
    expect((await raw("GET", "/.well-known/oauth-protected-resource", { headers: { host: `localhost:${port}` } })).status).toBe(200);

    // A token for B's resource works at B's host, and B's 401 names B's metadata.
    const bToken = await s.issuer.sign({ sub: "bob", tenant: s.tenantB, client_id: "test-client", scope: "tickets:read" }, hostBUri);
    const initB = await raw("POST", "/mcp", { headers: mcpHeaders(bToken, { host: `localhost:${port}` }), body: JSON.stringify(initialize()) });
    expect(initB.status, initB.text).toBe(200);
    const noTokenB = await raw("POST", "/mcp", { headers: { host: `localhost:${port}`, "content-type": "application/json" }, body: JSON.stringify(initialize()) });
    expect(noTokenB.status).toBe(401);
    expect(noTokenB.headers["www-authenticate"]).toContain(`resource_metadata="http://localhost:${port}/.well-known/oauth-protected-resource/mcp"`);
    // The same token at A's host is for another resource.
    expect((await raw("POST", "/mcp", { headers: mcpHeaders(bToken), body: JSON.stringify(initialize()) })).status).toBe(401);
    expect((await raw("POST", "/mcp", { headers: mcpHeaders(bToken, { host: `evil.example:${port}` }), body: JSON.stringify(initialize()) })).status).toBe(404);
    expect((await raw("POST", "/mcp", { headers: mcpHeaders(bToken, { host: "" }), body: JSON.stringify(initialize()) })).status).toBe(404);
  });

  it("--public-origin: repeatable or comma separated, origins only", () => {
    const base = ["--control-plane", "http://127.0.0.1:1", "--agent-key", "mda_x", "--keys", '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k"}]}'];
    const ok = loadConfig([...base, "--public-origin", "https://a.example", "--public-origin=https://b.example:8443/,http://localhost:9"], {});
    expect(ok.ok && ok.config.publicOrigins).toEqual(["https://a.example", "https://b.example:8443", "http://localhost:9"]);
    const env = loadConfig(base, { MANDATE_PUBLIC_ORIGIN: "https://c.example" });
    expect(env.ok && env.config.publicOrigins).toEqual(["https://c.example"]);
    for (const bad of ["http://a.example", "https://a.example/mcp", "https://u:p@a.example", "nope"]) {
      const r = loadConfig([...base, "--public-origin", bad], {});
      expect(r.ok, bad).toBe(false);
    }
    const key = loadConfig([...base, "--session-key", "c2hvcnQ="], {});
    expect(key.ok).toBe(false);
  });

  it("walks the HTTP edges: duplicate Authorization, content types, methods, headers, batches, notifications", async () => {
    const bearer = await s.token("tickets:read");
    const sid = await openSession(bearer);
    const h = mcpHeaders(bearer, { "mcp-session-id": sid });
    const list = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    // Two Authorization headers: refused, whichever is valid.
    const dup = await raw("POST", "/mcp", {
      rawHeaders: [
        "host",
        `127.0.0.1:${port}`,
        "authorization",
        `Bearer ${bearer}`,
        "authorization",
        "Bearer x",
        "content-type",
        "application/json",
        "accept",
        "application/json, text/event-stream",
        "mcp-session-id",
        sid,
      ],
      body: list,
    });
    expect(dup.status).toBe(401);
    // Two Host headers: refused before routing (Node would keep the first, a proxy may have used the other).
    const twoHosts = await raw("POST", "/mcp", {
      rawHeaders: [
        "host",
        `127.0.0.1:${port}`,
        "host",
        `localhost:${port}`,
        "authorization",
        `Bearer ${bearer}`,
        "content-type",
        "application/json",
        "accept",
        "application/json, text/event-stream",
        "mcp-session-id",
        sid,
      ],
      body: list,
    });
    expect(twoHosts.status).toBe(400);
    // Content types other than JSON: 415.
    expect((await raw("POST", "/mcp", { headers: { ...h, "content-type": "text/plain" }, body: list })).status).toBe(415);
    // HEAD and OPTIONS on the endpoint: 405, no CORS.
    for (const m of ["HEAD", "OPTIONS", "PUT", "PATCH"]) {
      const r = await raw(m, "/mcp", { headers: h });
      expect(r.status, m).toBe(405);
      expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    }
    // Malformed transport headers.
    expect((await raw("POST", "/mcp", { headers: { ...h, "mcp-protocol-version": "not-a-date" }, body: list })).status).toBe(400);
    expect((await raw("GET", "/mcp", { headers: { ...h, "last-event-id": "x".repeat(5000) }, readMs: 2000 })).status).toBe(400);
    // A forged or foreign session id: 404 Session not found.
    for (const bad of [`${sid}x`, sid.split(".")[0]!, "x".repeat(2000), `a.${sid.split(".")[1]}`]) {
      const r = await raw("POST", "/mcp", { headers: { ...h, "mcp-session-id": bad }, body: list });
      expect(r.status, bad.slice(0, 40)).toBe(404);
    }
    // Batches: bounded in length; invalid members answered one by one; duplicate JSON-RPC versions refused.
    const many = JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "ping" })));
    expect((await raw("POST", "/mcp", { headers: h, body: many })).status).toBe(400);
    const mixed = await raw("POST", "/mcp", {
      headers: h,
      body: JSON.stringify([{ jsonrpc: "2.0", id: "a", method: "tools/list" }, { jsonrpc: "1.0", id: "b", method: "ping" }, { id: "c", method: "ping", jsonrpc: "2.0", result: 1 }, 5]),
    });
    expect(mixed.status).toBe(200);
    const answers = messages(mixed);
    expect(
      answers
        .filter((m) => (m.error as { code?: number } | undefined)?.code === -32600)
        .map((m) => String(m.id))
        .sort(),
    ).toEqual(["b", "c", "null"]);
    expect(toolNames(answers.find((m) => m.id === "a"))).toEqual(["get_ticket", "list_tickets"]);
    // An empty body, an empty batch, a bare value: refused without reaching the upstream.
    for (const body of ["", "[]", "5", '"x"', "{"]) expect((await raw("POST", "/mcp", { headers: h, body })).status, body).toBe(400);
    // Notifications pass (202); a notification-shaped call does not.
    expect((await raw("POST", "/mcp", { headers: h, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } }) })).status).toBe(202);
    // A body over 4 MiB: 413 without reading it all.
    expect((await raw("POST", "/mcp", { headers: h, body: Buffer.alloc(4 * 1024 * 1024 + 1, 0x20) })).status).toBe(413);
  });

  it("replicas sharing --session-key accept each other's sessions (same caller only); --public-origin serves the public resource behind a proxy", async () => {
    const keyFile = path.join(s.dataDir, SESSION_KEY_FILE);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const sessionKey = Buffer.from((await readFile(keyFile, "utf8")).trim(), "base64");
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-replica-"));
    const replicaPort = await freePort();
    const enrollment = await createEnrollmentToken(s.owner.ctx, s.fleetId);
    const replica = await startAgent(
      { ...s.config, enrollmentToken: enrollment.token, agentKey: null, dataDir: dir, port: replicaPort, name: "replica", sessionKey, publicOrigins: [`http://127.0.0.1:${port}`] },
      { log: () => {}, driftCheckMs: 3_600_000 },
    );
    try {
      await until(() => replica.sync.current !== null);
      // As a proxy that rewrote Host to the replica's own address would send it.
      const viaProxy = { host: `127.0.0.1:${replicaPort}` };
      const toReplica = (method: string, p: string, opts: { headers?: Record<string, string>; body?: string } = {}) =>
        rawAt(replicaPort, method, p, { ...opts, headers: { ...viaProxy, ...opts.headers } });
      const prm = await toReplica("GET", "/.well-known/oauth-protected-resource/mcp");
      expect(prm.status).toBe(200);
      expect(JSON.parse(prm.text)).toMatchObject({ resource: s.resourceUri });
      const alice = await s.token("tickets:read");
      const sid = await openSession(alice);
      const list = JSON.stringify({ jsonrpc: "2.0", id: "r1", method: "tools/list" });
      const own = await toReplica("POST", "/mcp", { headers: mcpHeaders(alice, { "mcp-session-id": sid }), body: list });
      expect(own.status, own.text).toBe(200);
      expect(toolNames(messages(own).find((m) => m.id === "r1"))).toEqual(["get_ticket", "list_tickets"]);
      const mallory = await s.token("tickets:read", { sub: "mallory" });
      expect((await toReplica("POST", "/mcp", { headers: mcpHeaders(mallory, { "mcp-session-id": sid }), body: list })).status).toBe(404);
    } finally {
      await replica.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it("binds a session id to its caller across a restart: another caller presenting it gets 404 Session not found, its owner keeps it", async () => {
    const alice = await s.token("tickets:read");
    const mallory = await s.token("tickets:read", { sub: "mallory" });
    const sid = await openSession(alice);
    const list = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    expect((await raw("POST", "/mcp", { headers: mcpHeaders(mallory, { "mcp-session-id": sid }), body: list })).status).toBe(404);

    await s.agent.stop();
    restarted = await startAgent({ ...s.config, enrollmentToken: null }, { log: () => {}, driftCheckMs: 3_600_000 });
    await until(() => restarted!.sync.current !== null);
    const before = await callerRequests();
    const stolen = await raw("POST", "/mcp", { headers: mcpHeaders(mallory, { "mcp-session-id": sid }), body: list });
    expect(stolen.status).toBe(404);
    expect(messages(stolen)[0]).toMatchObject({ error: { code: -32001, message: "Session not found" } });
    expect(await callerRequests()).toBe(before);
    const own = await raw("POST", "/mcp", { headers: mcpHeaders(alice, { "mcp-session-id": sid }), body: list });
    expect(own.status).toBe(200);
    expect(toolNames(messages(own).find((m) => m.id === 1))).toEqual(["get_ticket", "list_tickets"]);
  }, 60_000);
});
