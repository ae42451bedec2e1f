/**
 * Approval click → call executed: a real agent (in this process, as the
 * tests run it) in front of a bank upstream, the control plane's agent API
 * over HTTP on a fresh database. For each of RUNS calls over the threshold:
 * the call is held (the agent files the request), then the clock starts,
 * the approver's decision runs (decideApproval: the row, the trail and a
 * signed live-bundle revision in one transaction, as the dashboard's
 * Approve button calls it), and the identical call is retried every
 * POLL_MS (one tools/call POST each, in one open MCP session) until
 * the upstream executes it. Prints p50/p99/max of the whole, and of its
 * two parts: the decision call itself and the rest (agent learns of the
 * revision and the retry runs).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import ./bench/no-server-only.mjs --import tsx bench/approval.ts
 *   RUNS=50 POLL_MS=2 …
 */
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";

const RUNS = Number(process.env.RUNS ?? 50);
const POLL_MS = Number(process.env.POLL_MS ?? 2);
if (!process.env.DATABASE_URL) throw new Error("set DATABASE_URL to a local PostgreSQL server");
// The sandbox and the bank listen on loopback: catalogue import must reach them.
process.env.MANDATE_EGRESS_ALLOW ??= "loopback";

const { startApprovalStack } = await import("@/test/approval-stack");
const { decideApproval } = await import("@/lib/approvals/service");

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const row = (label: string, xs: number[]) =>
  `${label.padEnd(34)} p50 ${q(xs, 50).toFixed(1).padStart(7)} ms   p99 ${q(xs, 99).toFixed(1).padStart(7)} ms   max ${Math.max(...xs)
    .toFixed(1)
    .padStart(7)} ms`;

const a = await startApprovalStack();
const token = await a.bearer();
// One MCP session (handshake era: the bank upstream speaks it), kept open: each try is one tools/call POST.
const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { McpError } = await import("@modelcontextprotocol/sdk/types.js");
const client = new Client({ name: "bench", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(a.bankUri), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
/** One tools/call; "held" (-32042, with the request id) while it waits for approval, "done" once executed. */
async function call(amount: number): Promise<{ state: "held" | "done" | "other"; id?: string }> {
  try {
    await client.callTool({ name: "transfer", arguments: { amount, to: "dave" } });
    return { state: "done" };
  } catch (err) {
    if (err instanceof McpError && err.code === -32042) return { state: "held", id: (err.data as { elicitations: { elicitationId: string }[] }).elicitations[0]!.elicitationId };
    if (process.env.BENCH_DEBUG) console.log(err);
    return { state: "other" };
  }
}

const total: number[] = [];
const decision: number[] = [];
const rest: number[] = [];
const polls: number[] = [];
try {
  // Warm: one full round (engine slices, pools, JIT).
  for (let i = 0; i <= RUNS; i++) {
    const amount = 2000 + i;
    const held = await call(amount);
    if (held.state !== "held" || !held.id) throw new Error(`run ${i}: the call was not held (${held.state})`);
    const t0 = performance.now();
    await decideApproval(a.approver.ctx, held.id, { decision: "approve", reason: "bench" }, a.s.kek);
    const t1 = performance.now();
    let n = 0;
    for (;;) {
      n++;
      const r = await call(amount);
      if (r.state === "done") break;
      if (performance.now() - t0 > 10_000) throw new Error(`run ${i}: not executed within 10 s`);
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
    const t2 = performance.now();
    if (i === 0) continue;
    total.push(t2 - t0);
    decision.push(t1 - t0);
    rest.push(t2 - t1);
    polls.push(n);
  }
  console.log(`approval click → call executed, ${RUNS} runs, poll every ${POLL_MS} ms (one tools/call per try); ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}`);
  console.log(row("click → executed", total));
  console.log(row("  decision call (commit + revision)", decision));
  console.log(row("  agent learns it + retry runs", rest));
  console.log(`  retries per run: p50 ${q(polls, 50)}, max ${Math.max(...polls)}; decision share of the whole at p50: ${(q(decision, 50) / q(total, 50)).toFixed(2)}`);
} finally {
  await client.close();
  await a.stop();
}
