/**
 * OpenTelemetry traces of agent calls, exported over OTLP/HTTP when an
 * endpoint is configured (docs/operations.md, "Traces").
 *
 * This module holds the configuration (the standard OTEL_* variables, read
 * with zod) and the types the HTTP layer and the proxy use; it imports no
 * OpenTelemetry code. `startTracing()` loads the SDK (agent/tracing-sdk.ts)
 * with a dynamic import, so an agent without an endpoint never loads it and
 * its hot path only tests `call.trace` for undefined.
 *
 * What a trace may carry: methods, tool / prompt names, resource URIs
 * without their query, tenant and server ids, the decision's outcome, stage
 * and policy ids, HTTP status codes and the upstream's URL without query or
 * userinfo. Never a token, a credential, an argument value, a session id or
 * a user id.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";

export interface TracingConfig {
  /** The OTLP/HTTP traces URL (…/v1/traces). */
  url: string;
  /** Fraction of new traces sampled (root spans); a caller's sampled flag is followed (parent-based) unless `parentBased` is false. */
  ratio: number;
  parentBased: boolean;
  /** Extract the caller's W3C trace context and inject it into upstream requests (OTEL_PROPAGATORS=tracecontext, the default). */
  propagate: boolean;
  serviceName: string;
  /** Extra headers for the collector (OTEL_EXPORTER_OTLP_[TRACES_]HEADERS; the exporter reads them itself too). */
  headers?: Record<string, string>;
  /** How long spans wait before a batch is sent (OTEL_BSP_SCHEDULE_DELAY, default 5000 ms). */
  scheduleDelayMs?: number;
}

export type TracingConfigResult = { ok: true; config: TracingConfig | null } | { ok: false; errors: string[] };

const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;

const httpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });

const envSchema = z
  .object({
    OTEL_SDK_DISABLED: z.enum(["true", "false", ""]).optional(),
    OTEL_TRACES_EXPORTER: z.enum(["otlp", "none", ""], { error: 'must be "otlp" or "none" (the agent exports traces over OTLP/HTTP only)' }).optional(),
    OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
    OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(["http/json", ""], { error: 'must be "http/json": the agent sends OTLP/HTTP with JSON bodies (every OTLP/HTTP collector accepts them)' }).optional(),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.enum(["http/json", ""], { error: 'must be "http/json"' }).optional(),
    OTEL_TRACES_SAMPLER: z.enum([...SAMPLERS, ""], { error: `must be one of ${SAMPLERS.join(", ")}` }).optional(),
    OTEL_TRACES_SAMPLER_ARG: z.coerce.number({ error: "must be a number from 0 to 1" }).min(0).max(1).optional(),
    OTEL_PROPAGATORS: z.enum(["tracecontext", "none", ""], { error: 'must be "tracecontext" or "none"' }).optional(),
    OTEL_SERVICE_NAME: z.string().trim().min(1).max(200).optional(),
    OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(0).max(60_000).optional(),
  })
  .strip();

/**
 * The tracing configuration from the standard OpenTelemetry variables, or
 * null when no OTLP endpoint is configured (or OTEL_SDK_DISABLED=true,
 * OTEL_TRACES_EXPORTER=none): then nothing is loaded. Every problem is listed.
 */
export function tracingConfig(env: Record<string, string | undefined>): TracingConfigResult {
  const picked: Record<string, string> = {};
  for (const k of Object.keys(envSchema.shape)) if (env[k] !== undefined && env[k] !== "") picked[k] = env[k]!;
  const r = envSchema.safeParse(picked);
  if (!r.success) return { ok: false, errors: r.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`) };
  const v = r.data;
  if (v.OTEL_SDK_DISABLED === "true" || v.OTEL_TRACES_EXPORTER === "none") return { ok: true, config: null };
  // The signal-specific URL is used as it is; the base endpoint gets the traces path (OTLP exporter specification).
  const url = v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (v.OTEL_EXPORTER_OTLP_ENDPOINT ? `${v.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces` : null);
  if (!url) return { ok: true, config: null };
  const sampler = v.OTEL_TRACES_SAMPLER || "parentbased_always_on";
  const ratio = sampler.endsWith("always_on") ? 1 : sampler.endsWith("always_off") ? 0 : (v.OTEL_TRACES_SAMPLER_ARG ?? 1);
  return {
    ok: true,
    config: {
      url,
      ratio,
      parentBased: sampler.startsWith("parentbased_"),
      propagate: v.OTEL_PROPAGATORS !== "none",
      serviceName: v.OTEL_SERVICE_NAME ?? "mandate-agent",
      scheduleDelayMs: v.OTEL_BSP_SCHEDULE_DELAY,
    },
  };
}

/** One timed step of a call (token check, decision, credential): ended once. */
export interface StepSpan {
  end(error?: string): void;
}

/** The upstream request of a call (a client span); ended with the answer's status or the error. */
export interface UpstreamSpan {
  end(status: number | Error): void;
}

/** What a decision span records (never the arguments). */
export interface TracedDecision {
  method: string;
  name: string | null;
  decision: "allow" | "deny";
  stage?: string;
  determining: string[];
}

/** The trace of one MCP request to one server (the server span and its children). */
export interface CallTrace {
  /** The trace id when this call is sampled (it goes into its decision records), else null. */
  readonly traceId: string | null;
  /** The caller's tenant, once its token is verified. */
  tenant(id: string): void;
  step(name: "mandate.token" | "mandate.decide" | "mandate.credential" | "mandate.list_filter"): StepSpan;
  /** Ends a decision step with what was decided; the server span takes the method, name and outcome. */
  decided(step: StepSpan, d: TracedDecision): void;
  /** Starts the upstream client span and injects its `traceparent` (and the caller's `tracestate`) into `headers`. */
  upstream(method: string, url: string, headers: Record<string, string>): UpstreamSpan;
}

export interface AgentTracing {
  /** Starts the server span of an MCP request (parented on the caller's `traceparent`); it ends when the answer is closed. */
  begin(req: IncomingMessage, res: ServerResponse, serverId: string): CallTrace;
  /** Sends every ended span now. */
  flush(): Promise<void>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

export interface TracingHooks {
  log: (msg: string) => void;
  /** Counts export results (spans exported or lost). */
  exported?: (ok: boolean, spans: number) => void;
}

/** Loads the OpenTelemetry SDK and the OTLP/HTTP exporter (only now) and starts a tracer provider of this agent's own. */
export async function startTracing(config: TracingConfig, hooks: TracingHooks): Promise<AgentTracing> {
  const sdk = await import("./tracing-sdk");
  return sdk.createTracing(config, hooks);
}
