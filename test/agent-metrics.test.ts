/**
 * The agent's /metrics exposition through prom-client: every series the docs
 * and alerts name is there with its type, decisions land in sub-millisecond
 * buckets, and Node's default process metrics come with it.
 */
import { describe, expect, it } from "vitest";
import { Metrics } from "@/agent/metrics";

describe("agent metrics", () => {
  it("exposes the agent's series, the decision histogram with sub-millisecond buckets, and process metrics", async () => {
    const m = new Metrics();
    m.decision("allow", 0.0002);
    m.decision("deny", 0.003);
    m.upstreamErrors += 2;
    m.credential("hit");
    m.upstreamRevocation("ok");
    m.logBacklog = () => ({ lines: 7, bytes: 900 });
    m.logWrites = () => ({ lone: 5, group: 3 });
    const text = await m.render({ revision: 4, installedAt: Date.now() - 2000 });
    expect(text).toContain('mandate_decisions_total{outcome="allow"} 1\n');
    expect(text).toContain('mandate_decisions_total{outcome="deny"} 1\n');
    expect(text).toContain("# TYPE mandate_decisions_total counter");
    expect(text).toContain("# TYPE mandate_decision_seconds histogram");
    expect(text).toContain('mandate_decision_seconds_bucket{le="0.00025"} 1\n');
    expect(text).toContain('mandate_decision_seconds_bucket{le="0.0025"} 1\n');
    expect(text).toContain('mandate_decision_seconds_bucket{le="0.005"} 2\n');
    expect(text).toContain("mandate_decision_seconds_count 2\n");
    expect(text).toContain("mandate_upstream_errors_total 2\n");
    expect(text).toContain('mandate_credential_resolutions_total{result="hit"} 1\n');
    expect(text).toContain('mandate_credential_resolutions_total{result="error"} 0\n');
    expect(text).toContain('mandate_upstream_revocations_total{result="ok"} 1\n');
    expect(text).toContain("mandate_bundle_revision 4\n");
    expect(text).toMatch(/^mandate_bundle_age_seconds (1\.9|2(\.\d+)?)/m);
    expect(text).toContain("mandate_log_backlog 7\n");
    expect(text).toContain("mandate_log_backlog_bytes 900\n");
    expect(text).toContain('mandate_log_writes_total{mode="lone"} 5\n');
    expect(text).toContain('mandate_log_writes_total{mode="group"} 3\n');
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) expect(text).toContain(`# TYPE ${name}`);
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // A second scrape reports the same counters, not doubled.
    expect(await m.render(null)).toContain("mandate_upstream_errors_total 2\n");
    expect(await m.render(null)).toContain("mandate_bundle_revision 0\n");
  });

  it("two agents in one process keep separate series", async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.decision("deny", 0.001);
    expect(await a.render(null)).toContain('mandate_decisions_total{outcome="deny"} 1\n');
    expect(await b.render(null)).toContain('mandate_decisions_total{outcome="deny"} 0\n');
  });
});
