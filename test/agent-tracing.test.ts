/**
 * Issue 14: OpenTelemetry traces of an agent call, exported over OTLP/HTTP to
 * a real receiver (an HTTP server in this test taking the exporter's real
 * requests), and the upstream-latency histogram on /metrics. Real agent,
 * control plane, signed bundles, an SDK v1 upstream that records the
 * traceparent it receives, and an SDK v1 client sending its own traceparent.
 */
import { spawnSync } from "node:child_process";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { tracingConfig } from "@/agent/tracing";
import { toLine } from "@/lib/enforcement/decision-record";
import { ingestDecisions } from "@/lib/decisions/ingest";
import { getDecision } from "@/lib/decisions/query";
import { tools } from "@/db/schema";
import { publishBundle } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { updateFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { uniq } from "./db";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";

/** An OTLP attribute value as the JSON encoding carries it. */
interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: AnyValue }[];
  status?: { code?: number };
}
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

const plain = (v: AnyValue): unknown => (v.arrayValue ? (v.arrayValue.values ?? []).map(plain) : (v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue)));
const attrs = (s: OtlpSpan): Record<string, unknown> => Object.fromEntries((s.attributes ?? []).map((a) => [a.key, plain(a.value)]));

/** A real OTLP/HTTP receiver: keeps every request's raw bytes and its decoded spans. */
async function startReceiver() {
  const bodies: Buffer[] = [];
  const spans: OtlpSpan[] = [];
  const contentTypes: string[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") return void res.writeHead(404).end();
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      bodies.push(body);
      contentTypes.push(String(req.headers["content-type"]));
      const doc = JSON.parse(body.toString("utf8")) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, bodies, spans, contentTypes, close: () => new Promise((r) => server.close(r)) };
}

const SECRET_ARG = "acct-7f3e9c1d-SECRET-ARGUMENT-VALUE";

/** An upstream MCP server (SDK v1) whose `lookup` tool takes an account; it records every traceparent it receives. */
async function addUpstream(s: AgentStack) {
  const traceparents: (string | undefined)[] = [];
  const upstream: Server = createHttpServer((req, res) => {
    traceparents.push(req.headers.traceparent as string | undefined);
    const mcp = new McpServer({ name: "accounts", version: "1.0.0" });
    mcp.registerTool("lookup", { description: "Looks an account up.", inputSchema: { account: z.string() } }, async () => ({ content: [{ type: "text", text: "found" }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void transport.close());
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const uri = `http://127.0.0.1:${new URL(s.resourceUri).port}/accounts`;
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({
      tenantId: s.tenantA,
      name: uniq("Accounts "),
      resourceUri: uri,
      upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`,
      scopes: ["accounts:read"],
      issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  const serverId = server!.id;
  await importCatalog(s.owner.ctx, serverId);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, serverId, { baseVersion: 0, mapping: { "accounts:read": ["lookup"] } });
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, serverId] });
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "accounts" }, s.kek);
  await s.waitRevision(rev + 1);
  return { uri, serverId, traceparents, close: () => new Promise((r) => upstream.close(r)) };
}

/** The tools/call decision line of a tool in the agent's WAL (read again if the shipper was sealing a segment meanwhile). */
async function walLine(s: AgentStack, tool: string) {
  let line: Awaited<ReturnType<AgentStack["walLines"]>>[number] | undefined;
  await until(async () => !!(line = (await s.walLines()).find((l) => l.tool === tool && l.method === "tools/call")));
  return line!;
}

/** Ships one WAL line through the control plane's ingest (the one decision schema) and reads its detail as the dashboard does. */
async function detailOf(s: AgentStack, line: Awaited<ReturnType<AgentStack["walLines"]>>[number]) {
  await ingestDecisions(s.t.db, { id: s.agent.sync.agentId!, fleetId: s.fleetId }, JSON.stringify(toLine(line)));
  return getDecision(s.owner.ctx, line.id);
}

/** Calls tools through the agent with an SDK client; `traceparent` is sent on every request when given. */
async function callThrough(uri: string, bearer: string, calls: { name: string; arguments: Record<string, unknown> }[], traceparent?: string) {
  const client = new Client({ name: "trace-test", version: "1" });
  const headers: Record<string, string> = { Authorization: `Bearer ${bearer}`, ...(traceparent ? { traceparent } : {}) };
  await client.connect(new StreamableHTTPClientTransport(new URL(uri), { requestInit: { headers } }));
  try {
    const out: string[] = [];
    for (const c of calls)
      out.push(
        await (c.name === LIST ? client.listTools() : client.callTool(c)).then(
          () => "ok",
          (e: Error) => e.message,
        ),
      );
    return out;
  } finally {
    await client.close();
  }
}

/** In a list of calls: tools/list instead of a tools/call. */
const LIST = "(tools/list)";
const CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN = "00f067aa0ba902b7";

describe("agent traces over OTLP (issue 14)", () => {
  let s: AgentStack;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  let up: Awaited<ReturnType<typeof addUpstream>>;

  beforeAll(async () => {
    rx = await startReceiver();
    s = await startAgentStack({ tracing: { url: rx.url, ratio: 1, parentBased: true, propagate: true, serviceName: "mandate-agent-test", scheduleDelayMs: 20 } });
    up = await addUpstream(s);
  }, 180_000);

  afterAll(async () => {
    await up?.close();
    await s?.stop();
    await rx?.close();
  });

  it("exports a server span per MCP request with token, decision, credential and upstream children, propagates traceparent, and never exports a token or an argument", async () => {
    const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "accounts:read" }, up.uri);
    const results = await callThrough(
      up.uri,
      bearer,
      [
        { name: "lookup", arguments: { account: SECRET_ARG } },
        { name: "not_in_catalogue", arguments: { account: SECRET_ARG } },
      ],
      `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
    );
    expect(results[0]).toBe("ok");
    expect(results[1]).toMatch(/-32003/);
    await s.agent.tracing!.flush();
    await until(() => rx.spans.filter((x) => x.name === "tools/call" && x.kind === SERVER).length >= 2);

    // The allowed call: a server span parented on the client's span, in the client's trace.
    const calls = rx.spans.filter((x) => x.name === "tools/call" && x.kind === SERVER);
    const allowed = calls.find((x) => attrs(x)["mandate.decision"] === "allow")!;
    expect(allowed).toBeDefined();
    expect(allowed.traceId).toBe(CLIENT_TRACE);
    expect(allowed.parentSpanId).toBe(CLIENT_SPAN);
    const a = attrs(allowed);
    expect(a).toMatchObject({
      "mcp.method.name": "tools/call",
      "gen_ai.tool.name": "lookup",
      "mandate.tenant.id": s.tenantA,
      "mandate.server.id": up.serverId,
      "mandate.decision": "allow",
      "mandate.decision.stage": "policy",
      "http.request.method": "POST",
      "http.response.status_code": 200,
    });
    expect((a["mandate.policy.ids"] as string[]).length).toBeGreaterThan(0);

    // Its children: token check, decide(), credential, and the upstream call (a client span with HTTP attributes).
    const children = rx.spans.filter((x) => x.parentSpanId === allowed.spanId);
    const byName = Object.fromEntries(children.map((c) => [c.name, c]));
    expect(Object.keys(byName).sort()).toEqual(["POST", "mandate.credential", "mandate.decide", "mandate.token"]);
    for (const n of ["mandate.token", "mandate.decide", "mandate.credential"]) expect(byName[n]!.kind).toBe(INTERNAL);
    expect(attrs(byName["mandate.decide"]!)).toMatchObject({ "mcp.method.name": "tools/call", "gen_ai.tool.name": "lookup", "mandate.decision": "allow" });
    const upstream = byName.POST!;
    expect(upstream.kind).toBe(CLIENT);
    expect(attrs(upstream)).toMatchObject({ "http.request.method": "POST", "server.address": "127.0.0.1", "http.response.status_code": 200 });
    expect(attrs(upstream)["url.full"]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);

    // The upstream received this trace, with the agent's client span as the parent.
    expect(up.traceparents).toContain(`00-${CLIENT_TRACE}-${upstream.spanId}-01`);

    // The denied call: its server span says why, and nothing went upstream for it.
    const denied = calls.find((x) => attrs(x)["mandate.decision"] === "deny")!;
    expect(attrs(denied)).toMatchObject({ "gen_ai.tool.name": "not_in_catalogue", "mandate.decision": "deny" });
    expect(typeof attrs(denied)["mandate.decision.stage"]).toBe("string");
    expect(rx.spans.filter((x) => x.parentSpanId === denied.spanId).map((x) => x.name)).not.toContain("POST");

    // The decision records link to the trace.
    const line = await walLine(s, "lookup");
    expect(line.context?.traceId).toBe(CLIENT_TRACE);
    expect((await detailOf(s, line)).traceId).toBe(CLIENT_TRACE);

    // No token, no argument value, no user id in any exported byte; OTLP/HTTP JSON.
    const all = Buffer.concat(rx.bodies).toString("utf8");
    expect(all).toContain("mandate-agent-test");
    for (const secret of [bearer, bearer.split(".")[2]!, SECRET_ARG, "alice", "Bearer"]) expect(all).not.toContain(secret);
    expect(rx.contentTypes.every((t) => t.startsWith("application/json"))).toBe(true);
  });

  it("starts a new trace (sampled) when the client sends no traceparent", async () => {
    const before = rx.spans.length;
    const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "accounts:read" }, up.uri);
    expect(
      await callThrough(up.uri, bearer, [
        { name: "lookup", arguments: { account: "x" } },
        { name: LIST, arguments: {} },
      ]),
    ).toEqual(["ok", "ok"]);
    await s.agent.tracing!.flush();
    await until(() => rx.spans.slice(before).some((x) => x.name === "tools/call") && rx.spans.slice(before).some((x) => x.name === "mandate.list_filter"));
    const span = rx.spans.slice(before).find((x) => x.name === "tools/call")!;
    expect(span.traceId).not.toBe(CLIENT_TRACE);
    expect(span.parentSpanId ?? "").toBe("");
    // tools/list: the answer's filter is a child span; the request stays one message (no batch size) with its own decision.
    const list = rx.spans.slice(before).find((x) => x.name === "tools/list" && x.kind === SERVER)!;
    expect(attrs(list)).toMatchObject({ "mcp.method.name": "tools/list", "mandate.decision": "allow", "mandate.decision.stage": "list" });
    expect(attrs(list)["mandate.batch.size"]).toBeUndefined();
    const filter = rx.spans.find((x) => x.parentSpanId === list.spanId && x.name === "mandate.list_filter")!;
    expect(attrs(filter)).toMatchObject({ "mcp.method.name": "tools/list", "mandate.decision": "allow" });
  });

  it("observes upstream latency per server id and outcome on /metrics, in buckets from 0.5 ms", async () => {
    const text = await (await fetch(`http://127.0.0.1:${new URL(s.resourceUri).port}/metrics`)).text();
    expect(text).toContain("# TYPE mandate_upstream_request_seconds histogram");
    expect(text).toContain(`mandate_upstream_request_seconds_bucket{le="0.0005",server_id="${up.serverId}",outcome="2xx"}`);
    const count = new RegExp(`^mandate_upstream_request_seconds_count\\{server_id="${up.serverId}",outcome="2xx"\\} (\\d+)$`, "m").exec(text);
    // initialize, notifications/initialized and the tools/call of each client, at least.
    expect(Number(count?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).not.toMatch(/mandate_upstream_request_seconds_count\{[^}]*tool/);
    expect(Number(/^mandate_trace_spans_total\{result="exported"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
  });
});

describe("tracing off (issue 14)", () => {
  it("loads no exporter, forwards no traceparent and writes no trace id when no OTLP endpoint is configured", async () => {
    const s = await startAgentStack();
    const up = await addUpstream(s);
    try {
      expect(s.agent.tracing).toBeUndefined();
      const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "accounts:read" }, up.uri);
      expect(await callThrough(up.uri, bearer, [{ name: "lookup", arguments: { account: "x" } }], `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`)).toEqual(["ok"]);
      expect(up.traceparents.length).toBeGreaterThan(0);
      expect(up.traceparents.every((t) => t === undefined)).toBe(true);
      const line = await walLine(s, "lookup");
      expect(line.context?.traceId).toBeUndefined();
      expect((await detailOf(s, line)).traceId).toBeNull();
      // The histogram works without tracing.
      expect(await (await fetch(`http://127.0.0.1:${new URL(s.resourceUri).port}/metrics`)).text()).toMatch(/mandate_upstream_request_seconds_count\{server_id="[^"]+",outcome="2xx"\} [1-9]/);
    } finally {
      await up.close();
      await s.stop();
    }
  }, 180_000);
});

describe("the SDK is loaded only when tracing is on", () => {
  it("an agent process that imported main.ts and the tracing module holds no OpenTelemetry SDK or exporter module until startTracing()", () => {
    // A fresh Node process (tsx), as the agent runs: CommonJS modules it loaded are in require.cache.
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(process.cwd() + "/");
      const loaded = () => Object.keys(require.cache).filter((k) => /@opentelemetry[\\\\/](sdk-trace|exporter-trace-otlp-http|otlp-exporter-base)/.test(k)).length;
      await import("./agent/main.ts");
      const t = await import("./agent/tracing.ts");
      const before = loaded();
      const tracing = await t.startTracing({ url: "http://127.0.0.1:9/v1/traces", ratio: 1, parentBased: true, propagate: true, serviceName: "x" }, { log: () => {} });
      const after = loaded();
      await tracing.shutdown();
      console.log(JSON.stringify({ before, after }));`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: process.cwd(), encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const { before, after } = JSON.parse(r.stdout.trim().split("\n").pop()!) as { before: number; after: number };
    expect(before).toBe(0);
    expect(after).toBeGreaterThan(0);
  }, 90_000);
});

describe("tracing configuration from the standard OTEL_* variables", () => {
  it("is off without an endpoint, appends /v1/traces to the base endpoint, takes the traces endpoint as is, and reads the sampler", () => {
    expect(tracingConfig({})).toEqual({ ok: true, config: null });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })).toMatchObject({
      ok: true,
      config: { url: "http://collector:4318/v1/traces", ratio: 1, parentBased: true, propagate: true },
    });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://b/otlp/traces" })).toMatchObject({ config: { url: "https://b/otlp/traces" } });
    expect(
      tracingConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
        OTEL_PROPAGATORS: "none",
        OTEL_SERVICE_NAME: "edge-1",
      }),
    ).toMatchObject({ config: { ratio: 0.25, parentBased: true, propagate: false, serviceName: "edge-1" } });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.5" })).toMatchObject({
      config: { ratio: 0.5, parentBased: false },
    });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_SDK_DISABLED: "true" })).toEqual({ ok: true, config: null });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_TRACES_EXPORTER: "none" })).toEqual({ ok: true, config: null });
    const bad = tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://a", OTEL_TRACES_SAMPLER_ARG: "2", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.errors.map((e) => e.split(":")[0]).sort()).toEqual(["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER_ARG"]);
  });
});
