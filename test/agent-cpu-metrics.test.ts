/**
 * The agent's cheap histograms (CountingHistogram in agent/metrics.ts,
 * issue 12's eighth round) against prom-client's own Histogram: for any
 * sequence of observations, over any label values, the registry renders the
 * same text and the same JSON, scrape after scrape.
 */
import fc from "fast-check";
import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CountingHistogram, DECISION_BUCKETS, Metrics, UPSTREAM_BUCKETS } from "@/agent/metrics";

// Values around and on the bucket bounds, far past them, zero, tiny and negative.
const value = fc.oneof(fc.constantFrom(...DECISION_BUCKETS, ...UPSTREAM_BUCKETS, 0, -1, 1e-9, 1e9), fc.double({ min: -1, max: 40, noNaN: true, noDefaultInfinity: true }));
const label = fc.oneof(fc.constantFrom("srv_a", "srv_b", 'q"uo\\te', "new\nline", ""), fc.string({ maxLength: 6 }));

describe("CountingHistogram", () => {
  it("renders what prom-client's Histogram renders for the same observations (labelled and not)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(label, fc.constantFrom("2xx", "4xx", "unreachable"), value), { maxLength: 60 }), fc.array(value, { maxLength: 30 }), async (up, dec) => {
        const mine = new Registry();
        const theirs = new Registry();
        const a = new CountingHistogram("h_up", "help \\ with\nnewline", UPSTREAM_BUCKETS, ["server_id", "outcome"] as const, mine);
        const b = new Histogram({ name: "h_up", help: "help \\ with\nnewline", labelNames: ["server_id", "outcome"] as const, buckets: UPSTREAM_BUCKETS, registers: [theirs] });
        const c = new CountingHistogram("h_dec", "decisions", DECISION_BUCKETS, [], mine);
        const d = new Histogram({ name: "h_dec", help: "decisions", buckets: DECISION_BUCKETS, registers: [theirs] });
        const bound = c.series();
        for (const [server, outcome, v] of up) {
          a.observe(a.series(server, outcome), v);
          b.observe({ server_id: server, outcome }, v);
        }
        for (const v of dec) {
          c.observe(bound, v);
          d.observe(v);
        }
        expect(await mine.metrics()).toBe(await theirs.metrics());
        expect(await mine.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
        // A second scrape: unchanged (nothing is reset by reading).
        expect(await mine.metrics()).toBe(await theirs.metrics());
        mine.resetMetrics();
        theirs.resetMetrics();
        expect(await mine.metrics()).toBe(await theirs.metrics());
      }),
      { numRuns: 300 },
    );
  });

  it("does not count a non-finite value (prom-client would throw on the hot path)", async () => {
    const r = new Registry();
    const h = new CountingHistogram("h", "h", [1], [], r);
    const s = h.series();
    h.observe(s, Number.NaN);
    h.observe(s, Number.POSITIVE_INFINITY);
    h.observe(s, 0.5);
    expect(await r.metrics()).toContain("h_count 1\n");
    expect(await r.metrics()).toContain("h_sum 0.5\n");
  });

  it("Metrics: decision and upstream observations reach /metrics through the cheap histograms", async () => {
    const m = new Metrics();
    m.decision("allow", 0.0002);
    m.upstream("srv_x", 200, 0.0007);
    m.upstream("srv_x", 503, 0.02);
    m.upstream("srv_x", null, 0.3);
    m.upstream("srv_x", 201, 0.0004);
    const text = await m.render(null);
    expect(text).toContain('mandate_decision_seconds_bucket{le="0.00025"} 1\n');
    expect(text).toContain('mandate_upstream_request_seconds_bucket{le="0.0005",server_id="srv_x",outcome="2xx"} 1\n');
    expect(text).toContain('mandate_upstream_request_seconds_bucket{le="0.001",server_id="srv_x",outcome="2xx"} 2\n');
    expect(text).toContain('mandate_upstream_request_seconds_count{server_id="srv_x",outcome="2xx"} 2\n');
    expect(text).toContain('mandate_upstream_request_seconds_count{server_id="srv_x",outcome="5xx"} 1\n');
    expect(text).toContain('mandate_upstream_request_seconds_count{server_id="srv_x",outcome="unreachable"} 1\n');
  });
});
