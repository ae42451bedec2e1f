/**
 * An upstream's SSE answer to a single request, sent to the client as one JSON body (agent/proxy.ts
 * `SseAnswer`, issue 12): a real agent in front of an upstream whose SSE answers the test writes byte
 * for byte. The JSON body is the screened message; anything the client must see as a stream (a
 * notification or a request before the response, an event with an id, a client that takes only SSE, a
 * batch, an answer slower than SSE_HOLD_MS) stays SSE; the upstream connection is kept after a JSON
 * answer; the official SDK clients (v1 and v2) read both forms.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport } from "@modelcontextprotocol/client";
import { SSE_HOLD_MS, acceptsJson } from "@/agent/proxy";
import { answerHandshake, startAgentStack, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;
let up: Server;
/** The approved tool definitions, as the sandbox lists them. */
let defs: Record<string, unknown>[] = [];
/** The upstream's sockets: one per connection the agent opened. */
const sockets = new Set<Socket>();
/** The upstream socket of the last answer that held its stream open. */
let held: Socket | null = null;
/** The upstream's answer to the last tools/call, as soon as the call arrives. */
let lastCall: ServerResponse | null = null;
/** How the test upstream answers a tools/call: the SSE body for the request's id (JSON text), written in these pieces with these pauses. */
const upstream = {
  events: (id: string) => [`event: message\ndata: {"result":{"content":[{"type":"text","text":"answer"}]},"jsonrpc":"2.0","id":${id}}\n\n`],
  /** Milliseconds before each piece. */
  pauses: [] as number[],
  /** Keep the stream open after the last piece for this long. */
  holdOpen: 0,
};

async function answerCall(res: ServerResponse, id: string): Promise<void> {
  // Headers at once, as the SDK servers send them for an SSE answer.
  lastCall = res;
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" }).flushHeaders();
  const pieces = upstream.events(id);
  for (let i = 0; i < pieces.length; i++) {
    const pause = upstream.pauses[i] ?? 0;
    if (pause) await new Promise((r) => setTimeout(r, pause));
    if (res.destroyed) return;
    res.write(pieces[i]);
  }
  if (upstream.holdOpen) {
    held = res.socket;
    // Still sending after the response (a comment), then ending a little later.
    await new Promise((r) => setTimeout(r, upstream.holdOpen));
    res.write(": still here\n\n");
    await new Promise((r) => setTimeout(r, 50));
  }
  res.end();
}

function handleUpstream(req: IncomingMessage, res: ServerResponse): void {
  let raw = "";
  req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
  req.on("end", () => {
    if (req.method !== "POST") return void res.writeHead(405).end();
    const m = JSON.parse(raw) as { id?: unknown; method: string; params?: { protocolVersion?: string } } | unknown[];
    if (Array.isArray(m)) {
      // A batch: one SSE event per request.
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const x of m as { id: unknown }[]) res.write(`event: message\ndata: ${JSON.stringify({ result: { content: [] }, jsonrpc: "2.0", id: x.id })}\n\n`);
      return void res.end();
    }
    if (answerHandshake(res, m, "sse-upstream", ["2025-06-18"])) return;
    if (m.id === undefined) return void res.writeHead(202).end();
    // The sandbox's own definitions (the approved ones): the agent's catalogue check finds no drift.
    if (m.method === "tools/list") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ result: { tools: defs }, jsonrpc: "2.0", id: m.id }));
    void answerCall(res, JSON.stringify(m.id));
  });
}

/** One POST to the agent: status, content type and length, and the body as sent. */
async function post(body: unknown, headers: Record<string, string>): Promise<{ status: number; type: string | null; length: string | null; text: string }> {
  const res = await fetch(s.resourceUri, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, type: res.headers.get("content-type"), length: res.headers.get("content-length"), text: await res.text() };
}

/** A session through the agent: the headers of its further requests. */
async function session(): Promise<Record<string, string>> {
  const auth = { authorization: `Bearer ${await s.token("tickets:read")}` };
  const init = await fetch(s.resourceUri, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth },
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sse-json", version: "1" } } }),
  });
  expect(init.status).toBe(200);
  const h = { ...auth, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-06-18" };
  expect((await post({ jsonrpc: "2.0", method: "notifications/initialized" }, h)).status).toBe(202);
  return h;
}

const call = (id: unknown) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "get_ticket", arguments: { id: "T-100" } } });
const defaults = { ...upstream };

beforeAll(async () => {
  s = await startAgentStack();
  defs = await s.sandboxTools();
  expect(defs.length).toBeGreaterThanOrEqual(4);
  up = createServer(handleUpstream);
  up.on("connection", (sock: Socket) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  await new Promise<void>((r) => up.listen(0, "127.0.0.1", () => r()));
  await s.useUpstream(`http://127.0.0.1:${(up.address() as AddressInfo).port}/mcp`, "sse upstream");
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
});

function reset(): void {
  Object.assign(upstream, defaults, { pauses: [], holdOpen: 0 });
}

describe("an upstream's SSE answer to one request", () => {
  it("goes to a client that takes JSON as one JSON body with its length: the screened message, for ids of every kind", async () => {
    reset();
    const h = await session();
    for (const id of [1, 0, -7, 2.5, "a", 'q"uo\\te', "é😀"]) {
      const r = await post(call(id), h);
      expect(r.status).toBe(200);
      expect(r.type).toBe("application/json");
      expect(Number(r.length)).toBe(Buffer.byteLength(r.text));
      expect(JSON.parse(r.text)).toEqual({ result: { content: [{ type: "text", text: "answer" }] }, jsonrpc: "2.0", id });
    }
  });

  it("stays SSE for a client that takes only SSE, for a batch, and with MANDATE_SSE_JSON=0", async () => {
    reset();
    const h = await session();
    const only = await post(call(1), { ...h, accept: "text/event-stream, application/json;q=0" });
    expect(only.type).toBe("text/event-stream");
    expect(only.text).toContain('"id":1');
    const batch = await post([call(2), call(3)], h);
    expect(batch.type).toBe("text/event-stream");
    expect(batch.text.match(/^data: /gm)).toHaveLength(2);
    process.env.MANDATE_SSE_JSON = "0";
    try {
      expect((await post(call(4), h)).type).toBe("text/event-stream");
    } finally {
      delete process.env.MANDATE_SSE_JSON;
    }
  });

  it("stays SSE when something comes before the response (a notification), and every event is passed on", async () => {
    reset();
    upstream.events = (id) => [
      `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n`,
      `event: message\ndata: {"result":{"content":[]},"jsonrpc":"2.0","id":${id}}\n\n`,
    ];
    const r = await post(call(9), await session());
    expect(r.type).toBe("text/event-stream");
    expect(r.text).toContain("notifications/progress");
    expect(r.text).toContain('"id":9');
  });

  it("stays SSE for an event with an id (a client may resume from it) or another field", async () => {
    reset();
    const h = await session();
    upstream.events = (id) => [`id: ev-1\nevent: message\ndata: {"result":{"content":[]},"jsonrpc":"2.0","id":${id}}\n\n`];
    const withId = await post(call(5), h);
    expect(withId.type).toBe("text/event-stream");
    expect(withId.text).toContain("id: ev-1");
    upstream.events = (id) => [`event: other\ndata: {"result":{"content":[]},"jsonrpc":"2.0","id":${id}}\n\n`];
    expect((await post(call(6), h)).type).toBe("text/event-stream");
  });

  it("stays SSE when the response names another id (never sent as this request's answer)", async () => {
    reset();
    upstream.events = () => [`event: message\ndata: {"result":{"content":[]},"jsonrpc":"2.0","id":"not-yours"}\n\n`];
    const r = await post(call(7), await session());
    expect(r.type).not.toBe("application/json");
  });

  it(`sends the SSE headers when the first event is slower than ${SSE_HOLD_MS} ms, and the events as they come`, async () => {
    reset();
    const h = await session();
    upstream.pauses = [SSE_HOLD_MS * 20];
    const t0 = Date.now();
    const res = await fetch(s.resourceUri, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...h }, body: JSON.stringify(call(8)) });
    const headersAfter = Date.now() - t0;
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const text = await res.text();
    const bodyAfter = Date.now() - t0;
    expect(headersAfter).toBeLessThan(SSE_HOLD_MS * 14);
    expect(bodyAfter).toBeGreaterThanOrEqual(SSE_HOLD_MS * 20 - 5);
    expect(text).toContain('"id":8');
  });

  it("answers at once while the upstream holds its stream open after the response, and keeps its connection for the next calls", async () => {
    reset();
    const h = await session();
    upstream.holdOpen = 1_500;
    const t0 = Date.now();
    const r = await post(call(11), h);
    expect(r.type).toBe("application/json");
    expect(Date.now() - t0).toBeLessThan(1_000);
    // The rest of the stream is read to its end, not cut off: the connection stays open (kept alive in the pool)
    // and serves a later call.
    await new Promise((res) => setTimeout(res, 1_700));
    expect(held).not.toBeNull();
    expect(sockets.has(held!)).toBe(true);
    expect(held!.destroyed).toBe(false);
    reset();
    const served = new Set<Socket>();
    const track = (req: IncomingMessage) => served.add(req.socket);
    up.on("request", track);
    try {
      for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 16 }, (_, j) => post(call(100 + i * 16 + j), h)));
    } finally {
      up.off("request", track);
    }
    expect(served.has(held!)).toBe(true);
  });

  it("closes the upstream request when the client goes away before the answer", async () => {
    reset();
    const h = await session();
    upstream.pauses = [5_000];
    lastCall = null;
    const ac = new AbortController();
    const res = await fetch(s.resourceUri, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...h },
      body: JSON.stringify(call(12)),
      signal: ac.signal,
    });
    // The headers came after the hold: the upstream holds the call.
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(lastCall).not.toBeNull();
    const upstreamSide = lastCall!;
    const closed = new Promise<void>((r) => (upstreamSide.destroyed ? r() : upstreamSide.once("close", () => r())));
    const t0 = Date.now();
    ac.abort();
    await closed;
    // Well before the upstream's 5 s answer, and not because the answer ended.
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(upstreamSide.writableFinished).toBe(false);
  });

  it("the official SDK clients (v1 and v2) call a tool through it", async () => {
    reset();
    const bearer = await s.token("tickets:read");
    const v1 = await s.connect(bearer);
    try {
      expect(await v1.callTool({ name: "get_ticket", arguments: { id: "T-100" } })).toMatchObject({ content: [{ type: "text", text: "answer" }] });
    } finally {
      await v1.close();
    }
    const v2 = new V2Client({ name: "sse-json-v2", version: "1" });
    await v2.connect(new V2Transport(new URL(s.resourceUri), { requestInit: { headers: { authorization: `Bearer ${bearer}` } } }));
    try {
      expect(await v2.callTool({ name: "get_ticket", arguments: { id: "T-100" } })).toMatchObject({ content: [{ type: "text", text: "answer" }] });
    } finally {
      await v2.close();
    }
  });
});

describe("acceptsJson", () => {
  it("reads media ranges and q=0", () => {
    expect(acceptsJson("application/json, text/event-stream")).toBe(true);
    expect(acceptsJson("text/event-stream, APPLICATION/JSON; charset=utf-8")).toBe(true);
    expect(acceptsJson("*/*")).toBe(true);
    expect(acceptsJson("application/*;q=0.5")).toBe(true);
    expect(acceptsJson("text/event-stream")).toBe(false);
    expect(acceptsJson("application/json;q=0, text/event-stream")).toBe(false);
    expect(acceptsJson("application/json; q=0.000")).toBe(false);
    expect(acceptsJson("application/jsonx")).toBe(false);
    expect(acceptsJson(undefined)).toBe(false);
    expect(acceptsJson("application/json," + " ".repeat(2000))).toBe(false);
  });
});
