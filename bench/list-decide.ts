/**
 * tools/list filtering in process: `listFilter()` (lib/enforcement/decide.ts) of 1,000 approved tools
 * for one caller, with the JS evaluator (the default) and with cedar-wasm alone, alternating, each list
 * in a new second (the decision memo misses). The agent adds this to every tools/list it answers
 * (bench/list.ts measures the whole path through a real agent). "per-entry" is the filter before
 * issue 12's list path: the whole decide() per entry and entryHash of every item, JS evaluator.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/list-decide.ts   (TOOLS=1000 POLICIES=200 LISTS=20)
 */
import { loadavg } from "node:os";
import type { PolicyRule } from "@/db/schema";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { entryHash, entryKey } from "@/lib/enforcement/catalogue-entry";
import { decide, decisionView, listFilter, type DecisionView } from "@/lib/enforcement/decide";
import { PolicyEngine } from "@/lib/enforcement/engine";
import { toolHash } from "@/lib/enforcement/tool-hash";
import { compileRule } from "@/lib/policy/rule";

const TOOLS = Number(process.env.TOOLS ?? 1000);
const POLICIES = Number(process.env.POLICIES ?? 200);
const LISTS = Number(process.env.LISTS ?? 20);

const defs = Array.from({ length: TOOLS }, (_, i) => ({
  name: `tool_${i}`,
  description: `Tool ${i}`,
  inputSchema: { type: "object", properties: { amount: { type: "integer" }, project: { type: "string" } } },
  annotations: { readOnlyHint: i % 3 === 0 },
}));
const snap: RegistrySnapshot = {
  servers: [
    {
      id: "srv_l",
      name: "list server",
      tenantId: "ten_a",
      tenantIds: ["ten_a"],
      resourceUri: "https://mcp.bench.example/l",
      upstreamUrl: "http://127.0.0.1:9/mcp",
      scopes: ["read"],
      issuers: [],
      prm: { resource: "https://mcp.bench.example/l", authorization_servers: [], scopes_supported: ["read"], bearer_methods_supported: ["header"] },
      tools: defs
        .map(
          (d) =>
            ({
              name: d.name,
              risk: "low",
              blocked: false,
              approved: { hash: toolHash(d as never), title: null, description: d.description, annotations: d.annotations, inputSchema: d.inputSchema },
            }) as RegistrySnapshot["servers"][number]["tools"][number],
        )
        .map((t, i) => ({ ...t, risk: (["low", "medium", "high", "critical"] as const)[i % 4]! })),
      mapping: { read: defs.map((d) => d.name) },
    },
  ],
  policies: Array.from({ length: POLICIES }, (_, p) => {
    const rule: PolicyRule = {
      effect: p % 2 ? "forbid" : "permit",
      actions: p % 3 ? ["call_tool"] : ["call_tool", "list_tools"],
      tools: [`tool_${(p * 7) % TOOLS}`],
      principals: { users: p % 5 === 0 ? [`user_${p % 50}`] : [], groups: p % 7 === 0 ? ["finance"] : [] },
      clients: [],
      conditions: [{ arg: "amount", op: p % 2 ? "gt" : "lte", value: 100 + p }],
    };
    return {
      id: `pol_${String(p).padStart(5, "0")}`,
      tenantId: "ten_a",
      serverId: "srv_l",
      name: `policy ${p}`,
      kind: "rule" as const,
      cedar: compileRule(rule, "srv_l", { name: `policy ${p}` }),
      enabled: true,
    };
  }),
  tests: [],
};
const compiled = compileBundle(snap, { fleetId: "flt_bench", revision: 1, parentRevision: null, createdAt: new Date().toISOString() });
if (compiled.issues.length) throw new Error(`bench bundle has issues: ${compiled.issues[0]!.message}`);
const principal = {
  issuer: "https://idp.example",
  tenantId: "ten_a",
  user: "https://idp.example#alice",
  client: "bench",
  scopes: ["read"],
  groups: ["finance"],
  actors: [],
  iat: 1_790_000_000,
  exp: 1_790_003_600,
};
const js = decisionView(compiled.content, { engine: new PolicyEngine(compiled.content) });
const wasmEngine = new PolicyEngine(compiled.content);
wasmEngine.jsEvaluator = false;
const wasm = decisionView(structuredClone(compiled.content), { engine: wasmEngine });
const upstream = JSON.stringify({ tools: defs });
/** The filter as it was: every entry through the whole decide(), every item hashed. */
function perEntry(view: DecisionView, request: Parameters<typeof listFilter>[1], items: readonly (typeof defs)[number][]) {
  const kept: unknown[] = [];
  const base = { ...request, name: null, tool: null, args: null };
  if (decide(view, { ...base, method: "tools/list" }).decision === "deny") return { kept };
  for (const t of items) {
    const name = entryKey("tool", t);
    const approved = name !== null ? view.engine.entry(request.serverId, "tool", name) : undefined;
    if (name === null || !approved) continue;
    let hash = "";
    try {
      hash = entryHash("tool", t);
    } catch {
      hash = "";
    }
    if (hash !== approved.hash) continue;
    if (decide(view, { ...base, method: "tools/list", name }).decision === "allow") kept.push(t);
  }
  return { kept };
}
const pct = (xs: number[], q: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const times: Record<"js" | "wasm" | "per-entry", number[]> = { js: [], wasm: [], "per-entry": [] };
let second = Date.UTC(2026, 11, 6, 2, 0, 0);
let kept = -1;
// Warm-up: slices parsed (as the agent's background preparse does), JIT.
for (const v of process.env.ONLY === "js" ? [js] : [js, wasm])
  for (let i = 0; i < 2; i++) listFilter(v, { serverId: "srv_l", principal, time: new Date((second += 1000)) }, (JSON.parse(upstream) as { tools: typeof defs }).tools);
for (let i = 0; i < LISTS; i++)
  for (const [name, v] of (i % 2
    ? [
        ["js", js],
        ["per-entry", js],
        ["wasm", wasm],
      ]
    : [
        ["wasm", wasm],
        ["per-entry", js],
        ["js", js],
      ]) as ["js" | "wasm" | "per-entry", typeof js][]) {
    if (process.env.ONLY && process.env.ONLY !== name) continue;
    const tools = (JSON.parse(upstream) as { tools: typeof defs }).tools; // the agent parses each answer anew
    const t0 = performance.now();
    const f =
      name === "per-entry"
        ? perEntry(v, { serverId: "srv_l", principal, time: new Date((second += 1000)) }, tools)
        : listFilter(v, { serverId: "srv_l", principal, time: new Date((second += 1000)) }, tools);
    times[name].push(performance.now() - t0);
    if (kept >= 0 && f.kept.length !== kept) throw new Error("the two engines listed different tools");
    kept = f.kept.length;
  }
console.log(
  `listFilter of ${TOOLS} approved tools, ${POLICIES} policies, one caller, a new second each list (load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}); ${kept} kept`,
);
console.log(`  JS evaluator: p50 ${pct(times.js, 0.5).toFixed(2)} ms, p99 ${pct(times.js, 0.99).toFixed(2)} ms`);
if (times["per-entry"].length)
  console.log(
    `  per-entry decide() (before the list path), JS evaluator: p50 ${pct(times["per-entry"], 0.5).toFixed(2)} ms, p99 ${pct(times["per-entry"], 0.99).toFixed(2)} ms; ratio p50 ${(pct(times["per-entry"], 0.5) / pct(times.js, 0.5)).toFixed(1)}x`,
  );
if (times.wasm.length)
  console.log(`  cedar-wasm:   p50 ${pct(times.wasm, 0.5).toFixed(2)} ms, p99 ${pct(times.wasm, 0.99).toFixed(2)} ms; ratio p50 ${(pct(times.wasm, 0.5) / pct(times.js, 0.5)).toFixed(1)}x`);
