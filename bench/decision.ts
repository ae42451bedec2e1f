/**
 * Decision latency of lib/enforcement for a bundle of 1,000 tools and 2,000
 * policies, against cedar-wasm `isAuthorized` given the policy text on every
 * call; and compile + sign time for that bundle.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/decision.ts   (N=5000 decisions by default)
 *   (the compiler's import chain reaches Next.js' "server-only" marker; the first import empties it, as the vitest alias does)
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { JWK } from "jose";
import { compileBundle } from "@/lib/bundles/compile";
import { signPayload } from "@/lib/bundles/signing";
import { contentHash } from "@/lib/enforcement/bundle";
import { cedar } from "@/lib/enforcement/cedar";
import { PolicyEngine, type DecisionRequest } from "@/lib/enforcement/engine";
import { POLICIES, SERVERS, snapshot, TOOLS_PER_SERVER } from "./snapshot";

const N = Number(process.env.N ?? 5000);
console.log(
  `load average ${(await import("node:os"))
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const snap = snapshot();
let t0 = performance.now();
const compiled = compileBundle(snap, { fleetId: "flt_bench", revision: 1, parentRevision: null, createdAt: new Date().toISOString() });
const compileMs = performance.now() - t0;
// Again in the same process (a control plane compiles in a long-lived process): the first compile also pays Cedar's wasm and the JIT warming up.
t0 = performance.now();
if (compileBundle(snap, { fleetId: "flt_bench", revision: 2, parentRevision: 1, createdAt: new Date().toISOString() }).issues.length) throw new Error("bench bundle has issues");
const compileAgainMs = performance.now() - t0;
// Again with one admin policy changed (the usual recompile: Cedar conversions of unchanged policy texts are remembered).
const changedSnap = { ...snap, policies: snap.policies.map((p, i) => (i === 0 ? { ...p, cedar: `// changed\n${p.cedar}` } : p)) };
t0 = performance.now();
if (compileBundle(changedSnap, { fleetId: "flt_bench", revision: 3, parentRevision: 2, createdAt: new Date().toISOString() }).issues.length) throw new Error("bench bundle has issues");
const compileChangedMs = performance.now() - t0;
if (compiled.issues.length) throw new Error(`bench bundle has issues: ${compiled.issues[0]!.message}`);
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
t0 = performance.now();
const sha256 = contentHash(compiled.content);
await signPayload({ kid: "bench", privateKey, publicJwk: publicKey.export({ format: "jwk" }) as JWK }, { sha256, fleetId: "flt_bench", revision: 1 });
const signMs = performance.now() - t0;
t0 = performance.now();
const engine = new PolicyEngine(compiled.content);
const loadMs = performance.now() - t0;

const requests: DecisionRequest[] = Array.from({ length: N }, (_, i) => ({
  action: "call_tool",
  serverId: `srv_${i % SERVERS}`,
  tool: `tool_${(i * 7) % TOOLS_PER_SERVER}`,
  tenantId: i % 3 ? "ten_a" : "ten_b",
  user: `user_${i % 50}`,
  groups: i % 4 ? [] : ["finance"],
  client: i % 2 ? "claude-desktop" : "cli",
  scopes: i % 2 ? ["read"] : ["read", "write"],
  args: { amount: (i * 37) % 1200, project: i % 3 ? "prod-eu" : "dev", tags: ["a", randomBytes(2).toString("hex")] },
}));

// First pass: includes parsing each (server, tenant, tool) slice on first use.
const cold: number[] = [];
for (const r of requests) {
  const s = performance.now();
  engine.decide(r);
  cold.push((performance.now() - s) * 1000);
}
cold.sort((a, b) => a - b);
// The same bundle decided by cedar-wasm alone (the JS evaluator off), its slices parsed in a first pass too.
const wasm = new PolicyEngine(compiled.content);
wasm.jsEvaluator = false;
for (const r of requests) wasm.decide(r);
const fast: number[] = [];
const fastWasm: number[] = [];
let allowed = 0;
let disagree = 0;
// Later than the first pass: none of these inputs was decided before (the memo misses; each request is distinct).
// Alternating halves (JS, cedar-wasm, cedar-wasm, JS) so drift of a shared machine cancels.
const half = Math.floor(requests.length / 2);
const passes: [PolicyEngine, number[], DecisionRequest[], number][] = [
  [engine, fast, requests.slice(0, half), 1],
  [wasm, fastWasm, requests.slice(0, half), 1],
  [wasm, fastWasm, requests.slice(half), 2],
  [engine, fast, requests.slice(half), 2],
];
const answers = new Map<DecisionRequest, string>();
for (const [e, out, rs, hours] of passes) {
  const later = new Date(Date.now() + hours * 3_600_000);
  for (const r of rs) {
    const s = performance.now();
    const d = e.decide({ ...r, time: later });
    out.push((performance.now() - s) * 1000);
    if (e === engine && d.decision === "allow") allowed++;
    const key = JSON.stringify(d);
    const seen = answers.get(r);
    if (seen === undefined) answers.set(r, key);
    else if (seen !== key) disagree++;
  }
}
fast.sort((a, b) => a - b);
fastWasm.sort((a, b) => a - b);
// The same inputs again within the same second (a session's repeated call): answered by the engine's memo.
const memo: number[] = [];
for (const r of requests) {
  const time = new Date();
  engine.decide({ ...r, time });
  const s = performance.now();
  engine.decide({ ...r, time });
  memo.push((performance.now() - s) * 1000);
}
memo.sort((a, b) => a - b);

// First decision after an install: on a new engine as is (its slice parsed on the call), and once the agent's
// background preparse (prepareAll) has run. A new bundle with different policy text parses anew (Cedar keeps
// every preparsed set by content hash): a no-op change in one policy makes every slice's text new.
const fresh = (n: number) => {
  const c = structuredClone(compiled.content);
  for (const k of Object.keys(c.cedar.policies)) c.cedar.policies[k] = `${c.cedar.policies[k]}\n// v${n}`;
  return new PolicyEngine(c);
};
const probe = requests[1]!;
let e = fresh(1);
t0 = performance.now();
e.decide({ ...probe, time: new Date() });
const firstCold = performance.now() - t0;
e = fresh(2);
t0 = performance.now();
const prepared = await e.prepareAll();
const prepareMs = performance.now() - t0;
t0 = performance.now();
e.decide({ ...probe, time: new Date() });
const firstWarm = performance.now() - t0;

// The naive way: hand cedar-wasm the whole policy text and every entity on each call.
const policyText = Object.values(compiled.content.cedar.policies).join("\n");
const slowN = Math.min(N, 300);
const slow: number[] = [];
for (const r of requests.slice(0, slowN)) {
  const s = performance.now();
  cedar.isAuthorized({
    principal: { type: "User", id: r.user },
    action: { type: "Action", id: r.action },
    resource: { type: "Tool", id: `${r.serverId}/${r.tool}` },
    context: {
      args: r.args as never,
      scopes: r.scopes,
      client: r.client,
      tenant: r.tenantId,
      delegation: { actors: [], depth: 0 },
      time: { epoch: 0, hour: 12, weekday: 3 },
      network: {},
      token: { iss: "", iat: 0, exp: 0 },
    },
    policies: { staticPolicies: policyText },
    entities: [{ uid: { type: "User", id: r.user }, attrs: {}, parents: [{ type: "Tenant", id: r.tenantId }] }, ...(compiled.content.cedar.entities as never[])],
  });
  slow.push((performance.now() - s) * 1000);
}
slow.sort((a, b) => a - b);

console.log(
  `bundle: ${SERVERS * TOOLS_PER_SERVER} tools, ${Object.keys(compiled.content.cedar.policies).length} Cedar policies (${POLICIES} admin policies + scope mappings), ${(JSON.stringify(compiled.content).length / 1024).toFixed(0)} KiB`,
);
console.log(
  `compile ${compileMs.toFixed(0)} ms (first in the process; again ${compileAgainMs.toFixed(0)} ms; again with one policy changed ${compileChangedMs.toFixed(0)} ms), hash + sign ${signMs.toFixed(1)} ms, engine load (preparse) ${loadMs.toFixed(0)} ms`,
);
console.log(`lib/enforcement decide, first pass (slices parsed on first use): p50 ${pct(cold, 50).toFixed(0)} µs, p99 ${pct(cold, 99).toFixed(0)} µs`);
console.log(
  `lib/enforcement decide, warm (distinct inputs, memo missing): p50 ${pct(fast, 50).toFixed(1)} µs, p99 ${pct(fast, 99).toFixed(1)} µs over ${fast.length} decisions (${((allowed / fast.length) * 100).toFixed(0)}% allowed; JS evaluator, cedar-wasm for what it declines)`,
);
console.log(
  `  same, cedar-wasm only (jsEvaluator off): p50 ${pct(fastWasm, 50).toFixed(1)} µs, p99 ${pct(fastWasm, 99).toFixed(1)} µs; ratio p50 ${(pct(fastWasm, 50) / pct(fast, 50)).toFixed(1)}x, p99 ${(pct(fastWasm, 99) / pct(fast, 99)).toFixed(1)}x; answers that differ between the two: ${disagree}`,
);
console.log(`lib/enforcement decide, repeated inputs (memo hit): p50 ${pct(memo, 50).toFixed(1)} µs, p99 ${pct(memo, 99).toFixed(1)} µs`);
console.log(`first decision after an install: ${firstCold.toFixed(1)} ms as is, ${firstWarm.toFixed(2)} ms after the background preparse (${prepared} slices in ${prepareMs.toFixed(0)} ms)`);
console.log(`cedar isAuthorized with text each call: p50 ${pct(slow, 50).toFixed(0)} µs, p99 ${pct(slow, 99).toFixed(0)} µs over ${slowN}`);
console.log(`ratio (naive / engine) p50: ${(pct(slow, 50) / pct(fast, 50)).toFixed(1)}x`);
