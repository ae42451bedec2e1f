/**
 * The OpenTelemetry side of agent/tracing.ts, loaded only when an OTLP
 * endpoint is configured. A tracer provider of the agent's own (never the
 * global one: several agents in one process keep their traces apart), a
 * batch span processor and the OTLP/HTTP (JSON) exporter. Spans are parented
 * explicitly through the call (no context manager, no async hooks).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { ExportResultCode, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
} from "@opentelemetry/semantic-conventions";
import { redactUrlsIn } from "@/lib/enforcement/redact";
import { AGENT_VERSION } from "./config";
import type { AgentTracing, CallTrace, StepSpan, TracedDecision, TracingConfig, TracingHooks, UpstreamSpan } from "./tracing";

// MCP semantic conventions (development status: copied here, as the semantic-conventions package advises for incubating names).
const MCP_METHOD_NAME = "mcp.method.name";
const MCP_RESOURCE_URI = "mcp.resource.uri";
const GEN_AI_TOOL_NAME = "gen_ai.tool.name";
const GEN_AI_PROMPT_NAME = "gen_ai.prompt.name";
// The agent's own attributes.
const TENANT_ID = "mandate.tenant.id";
const SERVER_ID = "mandate.server.id";
const DECISION = "mandate.decision";
const STAGE = "mandate.decision.stage";
const POLICY_IDS = "mandate.policy.ids";
const BATCH_SIZE = "mandate.batch.size";

/** Methods a span may be named after; anything else is named "mcp.request" (span names stay few). */
const KNOWN_METHODS = new Set([
  "initialize",
  "ping",
  "tools/call",
  "tools/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
  "server/discover",
  "subscriptions/listen",
]);
const MAX_NAME = 128;
const MAX_POLICIES = 20;

const clamp = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);
/** A URI or URL without its query, fragment or userinfo (where a credential or an argument could hide). */
function bare(uri: string): string {
  const cut = uri.replace(/[?#].*$/s, "");
  return clamp(cut.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1"), 512);
}

/** The attribute naming the object of a method: a tool, a prompt or a resource URI. */
function objectAttribute(method: string, name: string): [string, string] | null {
  if (method === "tools/call") return [GEN_AI_TOOL_NAME, clamp(name, MAX_NAME)];
  if (method === "prompts/get") return [GEN_AI_PROMPT_NAME, clamp(name, MAX_NAME)];
  if (method.startsWith("resources/")) return [MCP_RESOURCE_URI, bare(name)];
  return null;
}

/** Counts what the exporter sent or lost, and logs the first failure of each minute (the message redacted). */
function counted(inner: SpanExporter, hooks: TracingHooks): SpanExporter {
  let lastLog = 0;
  return {
    export(spans: ReadableSpan[], done) {
      inner.export(spans, (r) => {
        const ok = r.code === ExportResultCode.SUCCESS;
        hooks.exported?.(ok, spans.length);
        if (!ok && Date.now() - lastLog > 60_000) {
          lastLog = Date.now();
          hooks.log(`trace export failed (${spans.length} span(s) lost): ${redactUrlsIn(r.error?.message ?? "unknown error")}`);
        }
        done(r);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}

class Step implements StepSpan {
  ended = false;
  constructor(
    readonly span: Span,
    readonly name: string,
  ) {}
  end(error?: string): void {
    if (this.ended) return;
    this.ended = true;
    if (error) {
      this.span.setAttribute(ATTR_ERROR_TYPE, error);
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    this.span.end();
  }
}

class Call implements CallTrace {
  readonly traceId: string | null;
  private readonly ctx: Context;
  private decisions = 0;
  private denied = false;
  /** Steps started; one still open when the answer closes (an early refusal) ends then, marked with the answer's status. */
  private readonly steps: Step[] = [];

  constructor(
    private readonly t: Tracing,
    private readonly server: Span,
    parent: Context,
  ) {
    const sc = server.spanContext();
    this.traceId = server.isRecording() ? sc.traceId : null;
    this.ctx = trace.setSpan(parent, server);
  }

  tenant(id: string): void {
    this.server.setAttribute(TENANT_ID, id);
  }

  step(name: string): StepSpan {
    const s = new Step(this.t.tracer.startSpan(name, { kind: SpanKind.INTERNAL }, this.ctx), name);
    this.steps.push(s);
    return s;
  }

  /** Ends the steps the request left open (it was answered before they finished: refused, or failed). */
  closeSteps(status: number): void {
    for (const s of this.steps) if (!s.ended) s.end(status >= 400 ? String(status) : undefined);
  }

  decided(step: StepSpan, d: TracedDecision): void {
    const a: Attributes = { [MCP_METHOD_NAME]: clamp(d.method, 100), [DECISION]: d.decision, [POLICY_IDS]: d.determining.slice(0, MAX_POLICIES) };
    if (d.stage) a[STAGE] = d.stage;
    const o = d.name !== null ? objectAttribute(d.method, d.name) : null;
    if (o) a[o[0]] = o[1];
    const s = step as Step;
    s.span.setAttributes(a);
    s.end();
    // A list answer's filter is not a message of the request: the server span keeps the request's own decision.
    if (s.name === "mandate.list_filter") return;
    // The server span: the request's method and object (the first message of a batch), denied if any message was.
    this.denied ||= d.decision === "deny";
    if (this.decisions++ === 0) {
      this.server.setAttributes(a);
      this.server.updateName(KNOWN_METHODS.has(d.method) ? d.method : "mcp.request");
    } else {
      this.server.setAttributes({ [BATCH_SIZE]: this.decisions, [DECISION]: this.denied ? "deny" : "allow" });
    }
  }

  upstream(method: string, url: string, headers: Record<string, string>): UpstreamSpan {
    const attributes: Attributes = { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_FULL]: bare(url) };
    try {
      const u = new URL(url);
      attributes[ATTR_SERVER_ADDRESS] = u.hostname;
      attributes[ATTR_SERVER_PORT] = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
    } catch {
      // An unparseable URL fails at the request; the span says so.
    }
    const span = this.t.tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, this.ctx);
    // traceparent (this client span as the parent) and the caller's tracestate, if any; never baggage.
    if (this.t.propagate) this.t.propagator.inject(trace.setSpan(this.ctx, span), headers, defaultTextMapSetter);
    return {
      end(status: number | Error) {
        if (typeof status === "number") {
          span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
          if (status >= 500) span.setAttributes({ [ATTR_ERROR_TYPE]: String(status) }).setStatus({ code: SpanStatusCode.ERROR });
        } else span.setAttribute(ATTR_ERROR_TYPE, status.name === "AbortError" ? "aborted" : "unreachable").setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    };
  }
}

class Tracing implements AgentTracing {
  readonly tracer;
  readonly propagator = new W3CTraceContextPropagator();
  readonly propagate: boolean;
  private readonly provider: BasicTracerProvider;

  constructor(config: TracingConfig, hooks: TracingHooks) {
    const root = config.ratio >= 1 ? new AlwaysOnSampler() : config.ratio <= 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(config.ratio);
    const exporter = new OTLPTraceExporter({ url: config.url, ...(config.headers ? { headers: config.headers } : {}) });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: AGENT_VERSION }),
      sampler: config.parentBased ? new ParentBasedSampler({ root }) : root,
      spanProcessors: [new BatchSpanProcessor(counted(exporter, hooks), config.scheduleDelayMs !== undefined ? { scheduledDelayMillis: config.scheduleDelayMs } : {})],
    });
    this.tracer = this.provider.getTracer("mandate-agent", AGENT_VERSION);
    this.propagate = config.propagate;
  }

  begin(req: IncomingMessage, res: ServerResponse, serverId: string): CallTrace {
    const parent = this.propagate ? this.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter) : ROOT_CONTEXT;
    const path = (req.url ?? "/").replace(/[?#].*$/s, "");
    const method = req.method ?? "GET";
    const span = this.tracer.startSpan(
      `${method} ${clamp(path, 200)}`,
      { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_PATH]: clamp(path, 200), [SERVER_ID]: serverId } },
      parent,
    );
    const call = new Call(this, span, parent);
    res.once("close", () => {
      const status = res.statusCode;
      call.closeSteps(status);
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      if (!res.writableFinished) span.setAttribute(ATTR_ERROR_TYPE, "aborted");
      if (status >= 500) span.setAttribute(ATTR_ERROR_TYPE, String(status)).setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    return call;
  }

  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

export function createTracing(config: TracingConfig, hooks: TracingHooks): AgentTracing {
  return new Tracing(config, hooks);
}
