/** Prometheus text exposition for the few series the agent keeps. No client library: the format is small. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export class Metrics {
  readonly decisions = new Map<string, number>();
  private readonly buckets = BUCKETS.map(() => 0);
  private sum = 0;
  private count = 0;
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

  decision(outcome: "allow" | "deny", seconds: number): void {
    this.decisions.set(outcome, (this.decisions.get(outcome) ?? 0) + 1);
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.buckets[i]!++;
    });
    this.sum += seconds;
    this.count++;
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

  render(bundle: { revision: number; installedAt: number } | null, now = Date.now()): string {
    const out: string[] = [];
    out.push("# HELP mandate_decisions_total Authorization decisions by outcome.", "# TYPE mandate_decisions_total counter");
    for (const o of ["allow", "deny"]) out.push(`mandate_decisions_total{outcome="${o}"} ${this.decisions.get(o) ?? 0}`);
    out.push("# HELP mandate_decision_seconds Time to decide one request.", "# TYPE mandate_decision_seconds histogram");
    BUCKETS.forEach((b, i) => out.push(`mandate_decision_seconds_bucket{le="${b}"} ${this.buckets[i]}`));
    out.push(`mandate_decision_seconds_bucket{le="+Inf"} ${this.count}`, `mandate_decision_seconds_sum ${this.sum}`, `mandate_decision_seconds_count ${this.count}`);
    out.push("# HELP mandate_bundle_revision Revision of the bundle in force (0: none).", "# TYPE mandate_bundle_revision gauge", `mandate_bundle_revision ${bundle?.revision ?? 0}`);
    out.push(
      "# HELP mandate_bundle_age_seconds Seconds since the bundle in force was installed (-1: none).",
      "# TYPE mandate_bundle_age_seconds gauge",
      `mandate_bundle_age_seconds ${bundle ? ((now - bundle.installedAt) / 1000).toFixed(3) : -1}`,
    );
    out.push("# HELP mandate_upstream_errors_total Upstream requests that failed.", "# TYPE mandate_upstream_errors_total counter", `mandate_upstream_errors_total ${this.upstreamErrors}`);
    out.push(
      "# HELP mandate_hidden_changed_tools_total Tools hidden because their live definition differs from the approved one.",
      "# TYPE mandate_hidden_changed_tools_total counter",
      `mandate_hidden_changed_tools_total ${this.hiddenChangedTools}`,
    );
    out.push(
      "# HELP mandate_bundle_stale 1 while the bundle held is older than the maximum age without a confirmation from the control plane (calls refused).",
      "# TYPE mandate_bundle_stale gauge",
      `mandate_bundle_stale ${this.bundleStale}`,
    );
    out.push("# HELP mandate_bundle_rejections_total Bundles refused by verification.", "# TYPE mandate_bundle_rejections_total counter", `mandate_bundle_rejections_total ${this.bundleRejections}`);
    const backlog = this.logBacklog();
    out.push(
      "# HELP mandate_log_backlog Decisions written ahead but not yet acknowledged by the control plane.",
      "# TYPE mandate_log_backlog gauge",
      `mandate_log_backlog ${backlog.lines}`,
      "# HELP mandate_log_backlog_bytes Bytes of the decision log not yet acknowledged by the control plane.",
      "# TYPE mandate_log_backlog_bytes gauge",
      `mandate_log_backlog_bytes ${backlog.bytes}`,
    );
    out.push("# HELP mandate_decisions_shipped_total Decisions the control plane stored.", "# TYPE mandate_decisions_shipped_total counter", `mandate_decisions_shipped_total ${this.decisionsShipped}`);
    out.push(
      "# HELP mandate_decisions_duplicates_total Decisions resent that the control plane already held.",
      "# TYPE mandate_decisions_duplicates_total counter",
      `mandate_decisions_duplicates_total ${this.decisionsDuplicates}`,
    );
    out.push(
      "# HELP mandate_decisions_rejected_total Decision-log lines set aside (decisions-<seq>.rejected) because the control plane refused them or they did not parse.",
      "# TYPE mandate_decisions_rejected_total counter",
      `mandate_decisions_rejected_total ${this.decisionsRejected}`,
    );
    out.push(
      "# HELP mandate_decisions_quarantined_total Decision lines the control plane quarantined (stored aside with their problem) instead of storing.",
      "# TYPE mandate_decisions_quarantined_total counter",
      `mandate_decisions_quarantined_total ${this.decisionsQuarantined}`,
    );
    out.push(
      "# HELP mandate_log_shipping_halted 1 when decision shipping stopped for good (the agent key was refused).",
      "# TYPE mandate_log_shipping_halted gauge",
      `mandate_log_shipping_halted ${this.shippingHalted}`,
    );
    out.push("# HELP mandate_credential_resolutions_total Upstream credential resolutions by result.", "# TYPE mandate_credential_resolutions_total counter");
    for (const r of ["hit", "fetched", "error"]) out.push(`mandate_credential_resolutions_total{result="${r}"} ${this.credentials.get(r) ?? 0}`);
    out.push(
      "# HELP mandate_credential_failures_total Calls not forwarded because their upstream credential could not be resolved.",
      "# TYPE mandate_credential_failures_total counter",
      `mandate_credential_failures_total ${this.credentialFailures}`,
    );
    out.push("# HELP mandate_upstream_revocations_total RFC 7009 revocation requests sent to authorization servers, by result.", "# TYPE mandate_upstream_revocations_total counter");
    for (const r of ["ok", "unsupported", "error"]) out.push(`mandate_upstream_revocations_total{result="${r}"} ${this.upstreamRevocations.get(r) ?? 0}`);
    return out.join("\n") + "\n";
  }
}
