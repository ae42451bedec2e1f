import { createReadStream } from "node:fs";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import { backoff, sleep } from "./timing";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import { normalizeDecisionRecord, toLine } from "@/lib/enforcement/decision-record";
import type { Metrics } from "./metrics";
import type { DecisionWal, Segment } from "./wal";

const gzip = promisify(gzipCb);

export interface ShipperHooks {
  /**
   * Called after the control plane acknowledged a batch, before anything else
   * (the next batch, the segment's deletion). Returning "crash" stops the
   * shipper dead right there, as a process crash would: nothing is deleted,
   * nothing more is sent, `flush()` does nothing. For tests.
   */
  afterAck?: (info: { segment: string; batch: number; lines: number; last: boolean }) => "crash" | void;
  /** Sees every request before it is sent (for tests and benches). */
  beforeSend?: (info: { segment: string; batch: number; lines: number; bytes: number }) => void;
}

export interface ShipperOptions {
  wal: DecisionWal;
  /** Base URL of the control plane (no trailing slash). */
  controlPlaneUrl: string;
  /** The agent key, once enrolled (null before: the shipper waits). */
  agentKey: () => string | null;
  metrics: Metrics;
  log?: (msg: string) => void;
  /** How often the active segment is sealed and shipped when it holds data. Default 1 s. */
  intervalMs?: number;
  /** At most this many lines per request (default 5,000; the control plane takes up to 10,000). */
  maxBatchLines?: number;
  /** At most this many uncompressed bytes per request (default 8 MiB; the control plane takes up to 32 MiB). */
  maxBatchBytes?: number;
  /** Per-request timeout. Default 30 s. */
  requestTimeoutMs?: number;
  /** Delay before retry number `failures` (default: exponential from 0.5 s, ±50 % jitter, capped at 30 s). */
  backoff?: (failures: number) => number;
  hooks?: ShipperHooks;
  /** A batch the control plane refuses as a whole (400, 413, 415, 422: malformed transport) is retried this many times, then its segment is set aside. Default 5. */
  maxRefusals?: number;
  /** Requests to the control plane, through the egress guard (lib/net/agent.ts; main passes the agent's own). */
  fetch?: FetchLike;
}

type Sent = { kind: "ok" } | { kind: "rejected"; status: number; issue: string } | { kind: "unauthorized" } | { kind: "failed"; why: string } | { kind: "stopped" } | { kind: "crashed" };
type Shipped = "done" | "rejected" | "unauthorized" | "failed" | "stopped" | "crashed";

/**
 * Ships the decision log to the control plane, losslessly:
 *
 * - sealed segments go oldest first, in batches of at most `maxBatchLines`
 *   lines, gzip, `POST /api/v1/agent/decisions` (idempotent by decision id);
 * - a segment is deleted only after every batch of it was acknowledged (2xx),
 *   so a crash anywhere can only cause a resend, which the ids make harmless;
 * - when no sealed segment is left and the active one holds data, it asks the
 *   WAL to seal it (every `intervalMs`);
 * - every line is sent: records are normalized to the decision record's
 *   bounds (lib/enforcement/decision-record.ts), and a line that is not a
 *   record at all (torn by a crash) is sent as it is; the control plane
 *   stores the good lines and quarantines the bad ones with their problem
 *   (counted in `mandate_decisions_quarantined_total`), so no content can
 *   make it refuse a batch or make the agent set a segment aside;
 * - network errors and 5xx back off with jitter (capped at 30 s) and retry
 *   the same batch, forever (an outage must lose nothing); a batch refused as
 *   a whole (400, 413, 415, 422: bad gzip, too large, wrong type, which only
 *   a broken transport causes) is retried `maxRefusals` times with backoff,
 *   then its segment is moved to `decisions-<seq>.rejected`, counted in
 *   `mandate_decisions_rejected_total` and logged, so it never blocks later
 *   segments; 401 stops shipping for good (the agent key was revoked).
 */
export class DecisionShipper {
  private abort = new AbortController();
  private loop: Promise<void> | null = null;
  private failures = 0;
  private crashed = false;
  /** Why shipping stopped for good, if it did. */
  halted: string | null = null;
  private readonly log: (msg: string) => void;

  constructor(private readonly o: ShipperOptions) {
    this.log = o.log ?? ((m) => console.log(`[agent] ${m}`));
  }

  private get url(): string {
    return `${this.o.controlPlaneUrl}/api/v1/agent/decisions`;
  }

  /** Seals a leftover active segment (segments left from before are already known to the WAL) and starts shipping. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Stops the background loop (an in-flight request is abandoned; its batch is resent next time). */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop?.catch(() => {});
  }

  /**
   * At shutdown, after the WAL flush: stops the loop, seals the active
   * segment and ships what it can within `timeoutMs`, one attempt per batch
   * (no backoff). What is left stays on disk for the next start.
   */
  async flush(timeoutMs = 5000): Promise<{ left: number }> {
    await this.stop();
    if (this.crashed || this.halted) return { left: this.o.wal.backlog().lines };
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await this.o.wal.seal();
      for (const seg of this.o.wal.segments()) {
        if (signal.aborted) break;
        const r = await this.shipSegment(seg, signal, false);
        if (r === "unauthorized") this.halt();
        if (r !== "done" && r !== "rejected") break;
      }
    } catch (err) {
      this.log(`decision log: flush failed: ${describe(err)}`);
    }
    return { left: this.o.wal.backlog().lines };
  }

  private halt(): void {
    this.halted = "the control plane refused the agent key (401): it was revoked or is invalid; decisions stay in the data dir";
    this.o.metrics.shippingHalted = 1;
    this.log(`decision log: shipping stopped: ${this.halted}`);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let first = true;
    while (!signal.aborted) {
      try {
        if (!this.o.wal.segments().length) {
          // Leftover data from before is sealed at once; new data every interval.
          if (!first) await sleep(this.o.intervalMs ?? 1000, signal);
          first = false;
          if (signal.aborted) return;
          if (!this.o.wal.hasActiveData) continue;
          await this.o.wal.seal();
          if (!this.o.wal.segments().length) continue;
        }
        if (!this.o.agentKey()) {
          // Not enrolled yet: segments wait on disk.
          await sleep(this.o.intervalMs ?? 1000, signal);
          continue;
        }
        const r = await this.shipSegment(this.o.wal.segments()[0]!, signal, true);
        if (r === "unauthorized") return this.halt();
        if (r === "crashed" || r === "stopped") return;
      } catch (err) {
        if (signal.aborted) return;
        // File-system trouble (sealing, reading, deleting): retry later, losing nothing.
        this.log(`decision log: ${describe(err)}`);
        await sleep((this.o.backoff ?? backoff)(this.failures++), signal);
      }
    }
  }

  /** Sends one segment, batch by batch; deletes it when all were acknowledged, or moves it aside when its transport is refused. */
  private async shipSegment(seg: Segment, signal: AbortSignal, retry: boolean): Promise<Shipped> {
    const name = path.basename(seg.file);
    const maxLines = this.o.maxBatchLines ?? 5000;
    const maxBytes = this.o.maxBatchBytes ?? 8 * 1024 * 1024;
    let batch: string[] = [];
    let bytes = 0;
    let n = 0;
    let outcome: Sent | null = null;
    const rl = createInterface({ input: createReadStream(seg.file, { encoding: "utf8" }), crlfDelay: Infinity });
    try {
      for await (const text of rl) {
        if (!text.trim()) continue;
        const line = toDecisionLine(text);
        const size = Buffer.byteLength(line) + 1;
        if (batch.length && (batch.length >= maxLines || bytes + size > maxBytes)) {
          outcome = await this.send(name, n++, batch, false, signal, retry);
          if (outcome.kind !== "ok") break;
          batch = [];
          bytes = 0;
        }
        batch.push(line);
        bytes += size;
      }
    } finally {
      rl.close();
    }
    if ((!outcome || outcome.kind === "ok") && batch.length) outcome = await this.send(name, n++, batch, true, signal, retry);
    if (outcome && outcome.kind !== "ok") {
      if (outcome.kind === "rejected") {
        const moved = await this.o.wal.reject(seg);
        this.o.metrics.decisionsRejected += seg.lines;
        this.log(`decision log: the control plane refused the transport of ${name} (${outcome.status}, ${outcome.issue}); moved to ${path.basename(moved)}, later segments go on`);
        return "rejected";
      }
      return outcome.kind;
    }
    await this.o.wal.acknowledge(seg);
    return "done";
  }

  /** One batch: retried (with backoff) until acknowledged, refused, or stopped. */
  private async send(segment: string, batchNo: number, lines: string[], last: boolean, signal: AbortSignal, retry: boolean): Promise<Sent> {
    const body = await gzip(Buffer.from(lines.join("\n") + "\n", "utf8"));
    let refusals = 0;
    for (;;) {
      if (signal.aborted) return { kind: "stopped" };
      const key = this.o.agentKey();
      if (!key) return { kind: "failed", why: "not enrolled" };
      this.o.hooks?.beforeSend?.({ segment, batch: batchNo, lines: lines.length, bytes: body.length });
      let res: Response;
      try {
        res = await (this.o.fetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(this.url, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/x-ndjson", "content-encoding": "gzip" },
          body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.requestTimeoutMs ?? 30_000)]),
        });
      } catch (err) {
        if (signal.aborted) return { kind: "stopped" };
        const why = `control plane unreachable: ${describe(err)}`;
        if (!retry) return { kind: "failed", why };
        await this.failed(why, signal);
        continue;
      }
      if (res.ok) {
        const ack = (await res.json().catch(() => ({}))) as { accepted?: number; duplicates?: number; quarantined?: number };
        this.o.metrics.decisionsShipped += ack.accepted ?? 0;
        this.o.metrics.decisionsDuplicates += ack.duplicates ?? 0;
        this.o.metrics.decisionsQuarantined += ack.quarantined ?? 0;
        if (ack.quarantined) this.log(`decision log: the control plane quarantined ${ack.quarantined} line(s) of ${segment} (see the fleet's quarantine)`);
        if (this.failures) this.log(`decision log: shipping again after ${this.failures} failed attempt(s)`);
        this.failures = 0;
        if (this.o.hooks?.afterAck?.({ segment, batch: batchNo, lines: lines.length, last }) === "crash") {
          this.crashed = true;
          this.abort.abort();
          return { kind: "crashed" };
        }
        return { kind: "ok" };
      }
      if (res.status === 401) {
        await res.body?.cancel();
        return { kind: "unauthorized" };
      }
      if (TRANSPORT_REFUSALS.has(res.status)) {
        // The batch as a whole was refused (malformed transport): a bounded number of tries, then set aside.
        const issue = await firstIssue(res);
        if (!retry || ++refusals > (this.o.maxRefusals ?? 5)) return { kind: "rejected", status: res.status, issue };
        await this.failed(`the control plane refused a decision batch (${res.status}, ${issue}), try ${refusals}`, signal);
        continue;
      }
      const why = `the control plane answered ${res.status} to a decision batch`;
      await res.body?.cancel();
      if (!retry) return { kind: "failed", why };
      await this.failed(why, signal);
    }
  }

  private async failed(why: string, signal: AbortSignal): Promise<void> {
    const wait = (this.o.backoff ?? backoff)(this.failures++);
    this.log(`decision log: ${why}; retrying in ${(wait / 1000).toFixed(1)} s (backlog ${this.o.wal.backlog().lines} decisions)`);
    await sleep(wait, signal);
  }
}

/**
 * A WAL line as the control plane's decision line: a record normalized to the
 * decision record's bounds, without `time` and `agentId`; a line that is not a
 * JSON object (torn by a crash) goes as it is, for the control plane to quarantine.
 */
export function toDecisionLine(text: string): string {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch {
    return text;
  }
  if (!r || typeof r !== "object" || Array.isArray(r)) return text;
  return JSON.stringify(toLine(normalizeDecisionRecord(r)));
}

/** The first issue of a refusal: path and message only (never line contents, never a token). */
async function firstIssue(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { message?: string; issues?: { path?: string; message?: string }[] } };
    const i = body.error?.issues?.[0];
    return (i ? `${i.path ?? "?"}: ${i.message ?? "?"}` : (body.error?.message ?? "no detail")).slice(0, 300);
  } catch {
    return "no detail";
  }
}

/**
 * Answers that refuse a batch for its transport (bad gzip or body, too large, wrong type). Ingest
 * quarantines bad content line by line, so none of them can come from a decision's content. Any
 * other answer (404 or 403 from a proxy in between, 429, 5xx) is retried with backoff, forever.
 */
const TRANSPORT_REFUSALS = new Set([400, 413, 415, 422]);

const describe = (err: unknown) => (err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err));
