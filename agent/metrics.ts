/**
 * The agent's metrics, exposed on /metrics through prom-client: Node's default
 * process metrics (CPU, memory, event-loop lag, GC, handles) and the agent's own
 * series. Call sites keep plain fields and methods (cheap on the hot path); the
 * registry reads them at scrape time. One registry per agent, so several agents
 * in one process (tests) never share series.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** Decision time: most decisions take 0.1–1 ms (Cedar on a preparsed slice), a cold one tens of ms. */
export const DECISION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** Upstream time to the answer's headers: a loopback MCP server answers in 0.5–2 ms, a remote one in tens to hundreds of ms, a slow tool in seconds. */
export const UPSTREAM_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** The outcome label of an upstream request: its status class, or "unreachable" (no answer: refused, reset, timed out, aborted). */
export type UpstreamOutcome = "2xx" | "3xx" | "4xx" | "5xx" | "unreachable";
export const upstreamOutcome = (status: number | null): UpstreamOutcome => (status === null ? "unreachable" : status >= 500 ? "5xx" : status >= 400 ? "4xx" : status >= 300 ? "3xx" : "2xx");

export class Metrics {
  readonly decisions = new Map<string, number>();
  upstreamErrors = 0;
  hiddenChangedTools = 0;
  bundleRejections = 0;
  /** 1 while the bundle held is older than --max-bundle-age without a confirmation from the control plane (every call refused). */
  bundleStale = 0;
  /** Decision-log shipping (agent/shipper.ts). */
  decisionsShipped = 0;
  decisionsDuplicates = 0;
  decisionsRejected = 0;
  /** Lines the control plane quarantined (stored aside with their problem, see docs/audit.md). */
  decisionsQuarantined = 0;
  shippingHalted = 0;
  /** Upstream credential resolutions by result (hit: from memory; fetched: from the broker; error). */
  readonly credentials = new Map<string, number>();
  /** RFC 7009 revocation requests the agent sent to authorization servers, by result. */
  readonly upstreamRevocations = new Map<string, number>();
  /** Calls refused because the upstream credential could not be resolved. */
  credentialFailures = 0;
  /** Lines and bytes of the decision log not yet acknowledged by the control plane (set by the agent to read its WAL). */
  logBacklog: () => { lines: number; bytes: number } = () => ({ lines: 0, bytes: 0 });
  /** The decision log's durable writes by mode (DecisionWal.writes). */
  logWrites: () => { lone: number; group: number } = () => ({ lone: 0, group: 0 });

  /** Spans sent to the OTLP collector, and spans lost (export failed), when tracing is on. */
  tracesExported = 0;
  tracesLost = 0;

  readonly registry = new Registry();
  private readonly decisionSeconds: Histogram;
  private readonly upstreamSeconds: Histogram<"server_id" | "outcome">;
  private bundle: { revision: number; installedAt: number } | null = null;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const r = [this.registry];
    this.decisionSeconds = new Histogram({ name: "mandate_decision_seconds", help: "Time to decide one request.", buckets: DECISION_BUCKETS, registers: r });
    // Labelled by server id (bounded by the bundle's servers) and outcome (5 values); never by tool name.
    this.upstreamSeconds = new Histogram({
      name: "mandate_upstream_request_seconds",
      help: "Upstream MCP requests forwarded by the agent: time from sending to the answer's headers, by server id and outcome (status class or unreachable).",
      labelNames: ["server_id", "outcome"] as const,
      buckets: UPSTREAM_BUCKETS,
      registers: r,
    });
    /** A counter whose value lives in a field or map of this object, read at scrape time. */
    const counter = (name: string, help: string, read: () => number | [string, string[], (v: string) => number]) =>
      new Counter({
        name,
        help,
        labelNames: Array.isArray(read()) ? [(read() as [string, string[], unknown])[0]] : [],
        registers: r,
        collect() {
          this.reset();
          const v = read();
          if (Array.isArray(v)) for (const l of v[1]) this.inc({ [v[0]]: l }, v[2](l));
          else this.inc(v);
        },
      });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read());
        },
      });
    counter("mandate_decisions_total", "Authorization decisions by outcome.", () => ["outcome", ["allow", "deny"], (o) => this.decisions.get(o) ?? 0]);
    gauge("mandate_bundle_revision", "Revision of the bundle in force (0: none).", () => this.bundle?.revision ?? 0);
    gauge("mandate_bundle_age_seconds", "Seconds since the bundle in force was installed (-1: none).", () => (this.bundle ? (Date.now() - this.bundle.installedAt) / 1000 : -1));
    counter("mandate_upstream_errors_total", "Upstream requests that failed.", () => this.upstreamErrors);
    counter("mandate_hidden_changed_tools_total", "Tools hidden because their live definition differs from the approved one.", () => this.hiddenChangedTools);
    gauge("mandate_bundle_stale", "1 while the bundle held is older than the maximum age without a confirmation from the control plane (calls refused).", () => this.bundleStale);
    counter("mandate_bundle_rejections_total", "Bundles refused by verification.", () => this.bundleRejections);
    gauge("mandate_log_backlog", "Decisions written ahead but not yet acknowledged by the control plane.", () => this.logBacklog().lines);
    gauge("mandate_log_backlog_bytes", "Bytes of the decision log not yet acknowledged by the control plane.", () => this.logBacklog().bytes);
    counter("mandate_log_writes_total", "Durable writes of the decision log: lone (the only call in flight, on the event loop) or group (through the thread pool).", () => [
      "mode",
      ["lone", "group"],
      (m) => this.logWrites()[m as "lone" | "group"],
    ]);
    counter("mandate_decisions_shipped_total", "Decisions the control plane stored.", () => this.decisionsShipped);
    counter("mandate_decisions_duplicates_total", "Decisions resent that the control plane already held.", () => this.decisionsDuplicates);
    counter("mandate_decisions_rejected_total", "Decision-log lines set aside (decisions-<seq>.rejected) because the control plane refused them or they did not parse.", () => this.decisionsRejected);
    counter("mandate_decisions_quarantined_total", "Decision lines the control plane quarantined (stored aside with their problem) instead of storing.", () => this.decisionsQuarantined);
    gauge("mandate_log_shipping_halted", "1 when decision shipping stopped for good (the agent key was refused).", () => this.shippingHalted);
    counter("mandate_credential_resolutions_total", "Upstream credential resolutions by result.", () => ["result", ["hit", "fetched", "error"], (k) => this.credentials.get(k) ?? 0]);
    counter("mandate_credential_failures_total", "Calls not forwarded because their upstream credential could not be resolved.", () => this.credentialFailures);
    counter("mandate_upstream_revocations_total", "RFC 7009 revocation requests sent to authorization servers, by result.", () => [
      "result",
      ["ok", "unsupported", "error"],
      (k) => this.upstreamRevocations.get(k) ?? 0,
    ]);
    counter("mandate_trace_spans_total", "Spans the OTLP exporter sent (exported) or lost (export failed); 0 when tracing is off.", () => [
      "result",
      ["exported", "lost"],
      (k) => (k === "exported" ? this.tracesExported : this.tracesLost),
    ]);
  }

  /** One upstream request: seconds from sending it to its answer's headers, and its status (null: no answer). */
  upstream(serverId: string, status: number | null, seconds: number): void {
    this.upstreamSeconds.observe({ server_id: serverId, outcome: upstreamOutcome(status) }, seconds);
  }

  decision(outcome: "allow" | "deny", seconds: number): void {
    this.decisions.set(outcome, (this.decisions.get(outcome) ?? 0) + 1);
    this.decisionSeconds.observe(seconds);
  }

  credential(result: "hit" | "fetched" | "error"): void {
    this.credentials.set(result, (this.credentials.get(result) ?? 0) + 1);
  }

  upstreamRevocation(result: "ok" | "unsupported" | "error"): void {
    this.upstreamRevocations.set(result, (this.upstreamRevocations.get(result) ?? 0) + 1);
  }

  /** Cumulative counters for the heartbeat. */
  counters(): Record<string, number> {
    return {
      allowed: this.decisions.get("allow") ?? 0,
      denied: this.decisions.get("deny") ?? 0,
      upstream_errors: this.upstreamErrors,
      hidden_changed_tools: this.hiddenChangedTools,
      bundle_rejections: this.bundleRejections,
      decisions_shipped: this.decisionsShipped,
      decisions_rejected: this.decisionsRejected,
      decisions_quarantined: this.decisionsQuarantined,
      log_backlog: this.logBacklog().lines,
      credential_failures: this.credentialFailures,
    };
  }

  /** The Prometheus text exposition (content type: `contentType`). */
  async render(bundle: { revision: number; installedAt: number } | null): Promise<string> {
    this.bundle = bundle;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
