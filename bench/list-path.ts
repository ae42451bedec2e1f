/**
 * The agent's own work for one tools/list answer of TOOLS (default 1,000) approved tools, in process:
 * the upstream's SSE event parsed (JSON.parse), its tools filtered for one caller, the filtered answer
 * serialized again and encoded (UTF-8, as the socket write does; agent/proxy.ts pipeSse), each list in a new second. Alternating, in one
 * process: "bytes" = a remembered serialized answer with the id spliced in, from the text alone (agent/proxy.ts
 * screenText, the path the agent takes; MANDATE_LIST_BYTES=0 skips it), "memo" = parse + filterListRemembered
 * (agent/list-memo.ts: the whole-list memo) + serialize, "no memo" = filterList() alone (MANDATE_LIST_MEMO=0), and the parse + serialize alone
 * ("floor": what any screening proxy pays). bench/list.ts measures the same through real processes.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/list-path.ts   (TOOLS=1000 POLICIES=200 LISTS=40)
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import type { PolicyRule } from "@/db/schema";
import type { ServerResponse } from "node:http";
import {
  filterListRemembered,
  listMemoStats,
  messageEntryOf,
  noteListAnswer,
  noteUpstreamText,
  rememberedAnswer,
  rememberedTexts,
  serializeAnswer,
  splitIdTail,
  type AnswerParts,
} from "@/agent/list-memo";
import { pipeSse, startedSink, type Screen } from "@/agent/proxy";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { decisionView, filterList } from "@/lib/enforcement/decide";
import { toolHash } from "@/lib/enforcement/tool-hash";
import { compileRule } from "@/lib/policy/rule";

const TOOLS = Number(process.env.TOOLS ?? 1000);
const POLICIES = Number(process.env.POLICIES ?? 200);
const LISTS = Number(process.env.LISTS ?? 40);

const defs = Array.from({ length: TOOLS }, (_, i) => ({
  name: `tool_${String(i).padStart(4, "0")}`,
  description: `Bench tool ${i}: reads one record by id.`,
  inputSchema: { type: "object", properties: { id: { type: "string" }, limit: { type: "integer" } }, required: ["id"] },
  annotations: { readOnlyHint: i % 2 === 0 },
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
      tools: defs.map(
        (d) =>
          ({
            name: d.name,
            risk: "low",
            blocked: false,
            approved: { hash: toolHash(d as never), title: null, description: d.description, annotations: d.annotations, inputSchema: d.inputSchema },
          }) as RegistrySnapshot["servers"][number]["tools"][number],
      ),
      mapping: { read: defs.map((d) => d.name) },
    },
  ],
  policies: Array.from({ length: POLICIES }, (_, p) => {
    const rule: PolicyRule = {
      effect: p % 2 ? "forbid" : "permit",
      actions: p % 3 ? ["call_tool"] : ["call_tool", "list_tools"],
      tools: [`tool_${String((p * 7) % TOOLS).padStart(4, "0")}`],
      principals: { users: p % 5 === 0 ? [`user_${p % 50}`] : [], groups: p % 7 === 0 ? ["finance"] : [] },
      clients: [],
      conditions: [{ arg: "id", op: "eq", value: `r-${p}` }],
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
const view = decisionView(compiled.content);
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
const drifted = new Set<string>();
let id = 0;
// What the upstream sends on the POST's SSE stream: one event carrying the answer.
// One flat string, as the agent's event text is (its decoded pieces joined).
const event = () => ["event: message\ndata: ", JSON.stringify({ result: { tools: defs }, jsonrpc: "2.0", id: ++id })].join("");
let second = Date.UTC(2026, 11, 6, 2, 0, 0);
type Path = "sse raw" | "sse text" | "bytes" | "memo" | "no memo" | "floor";
const PATHS: Path[] = ["sse raw", "sse text", "bytes", "memo", "no memo", "floor"];
// agent/proxy.ts pipeSse on the event as the upstream's socket gives it (64 KiB chunks), with the screen the agent
// builds from the list memo: "sse raw" compares the undecoded bytes with the remembered text (the agent's path),
// "sse text" decodes and joins the chunks and cuts the text first (MANDATE_LIST_RAW=0, the sixth round's path).
// Both write to a response that only counts what it is given (the socket's own copy is not in this figure).
const request = { serverId: "srv_l", principal };
const fromMemory = (tail: { prefix: string; id: string | number }) => rememberedAnswer(view, request, "tools", tail, { drifted }, "tools/list", false, () => true)?.answer ?? null;
const sseScreen: Screen = Object.assign(
  async () => {
    throw new Error("bench/list-path: the remembered list was not found");
  },
  {
    text: (text: string) => {
      const tail = splitIdTail(text);
      return tail && fromMemory(tail);
    },
    remembered: () => rememberedTexts(view, request, { drifted }),
    tail: fromMemory,
  },
);
let written = 0;
const res = {
  destroyed: false,
  cork() {},
  uncork() {},
  write: (b: string | Buffer) => void (written += b.length),
} as unknown as ServerResponse;
async function sse(path: "sse raw" | "sse text"): Promise<number> {
  const bytes = Buffer.from(event() + "\n\n");
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.subarray(at, at + 65_536));
  const t0 = performance.now();
  if (path === "sse text") process.env.MANDATE_LIST_RAW = "0";
  try {
    await pipeSse(
      (async function* () {
        yield* chunks;
      })(),
      startedSink(res),
      sseScreen,
    );
  } finally {
    delete process.env.MANDATE_LIST_RAW;
  }
  return performance.now() - t0;
}
const hints = { has: false, upstream: null, out: undefined };
function once(path: Path): number {
  const text = event();
  const t0 = performance.now();
  const data = text.slice(text.indexOf("data: ") + 6);
  if (path === "bytes") {
    // agent/proxy.ts screenText: the remembered answer, from the text alone; else the full path, remembering its answer.
    const tail = splitIdTail(data);
    const hit = tail && rememberedAnswer(view, { serverId: "srv_l", principal }, "tools", tail, { drifted }, "tools/list", false, () => true);
    // What is handed to the socket: the event's head, the remembered bytes and the id (no copy of the answer).
    const wire = (j: string | AnswerParts) =>
      typeof j === "string" ? [Buffer.from(`event: message\ndata: ${j}\n\n`)] : [Buffer.from("event: message\ndata: "), j.before, Buffer.from(j.id), j.after, Buffer.from("\n\n")];
    if (hit) {
      if (wire(hit.answer).length < 2) throw new Error("empty");
      return performance.now() - t0;
    }
    const m = JSON.parse(data) as { id: number; result: { tools: unknown[] } };
    noteUpstreamText(m, data);
    const f = filterListRemembered(view, { serverId: "srv_l", principal, time: new Date((second += 1000)) }, "tools", m.result.tools, { drifted }, m.result);
    const msg = { ...m, result: { ...m.result, tools: f.kept } };
    const entry = messageEntryOf(f);
    if (entry) noteListAnswer(msg, entry, { method: "tools/list", stateless: false, hints });
    if (!wire(serializeAnswer(msg)).length) throw new Error("empty");
    return performance.now() - t0;
  }
  const m = JSON.parse(data) as { id: number; result: { tools: unknown[] } };
  if (path === "memo") noteUpstreamText(m, data);
  const request = { serverId: "srv_l", principal, time: new Date((second += 1000)) };
  const kept =
    path === "floor"
      ? m.result.tools
      : path === "memo"
        ? filterListRemembered(view, request, "tools", m.result.tools, { drifted }, m.result).kept
        : filterList(view, request, "tools", m.result.tools, { drifted }).kept;
  // Encoded as the socket write does.
  const out = Buffer.from(`event: message\ndata: ${JSON.stringify({ ...m, result: { ...m.result, tools: kept } })}\n\n`);
  if (out.length < 10) throw new Error("empty");
  return performance.now() - t0;
}
const times: Record<Path, number[]> = { "sse raw": [], "sse text": [], bytes: [], memo: [], "no memo": [], floor: [] };
const run = (p: Path) => (p === "sse raw" || p === "sse text" ? sse(p) : once(p));
// The first "bytes" list fills the memo (and remembers its answer) the sse paths answer from.
for (let i = 0; i < 3; i++) for (const p of ["bytes", ...PATHS] as Path[]) await run(p);
const matched = listMemoStats.eventsMatched;
for (let i = 0; i < LISTS; i++) for (const p of i % 2 ? PATHS : [...PATHS].reverse()) times[p].push(await run(p));
if (listMemoStats.eventsMatched - matched !== LISTS) throw new Error(`sse raw: ${listMemoStats.eventsMatched - matched} of ${LISTS} events matched by their bytes`);
const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const kept = filterList(view, { serverId: "srv_l", principal, time: new Date() }, "tools", JSON.parse(JSON.stringify(defs)) as unknown[], { drifted }).kept.length;
console.log(
  `tools/list of ${TOOLS} tools (${kept} kept), ${POLICIES} policies, one caller, a new second each list, answer ${(event().length / 1024).toFixed(0)} KiB (load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")})`,
);
for (const p of ["floor", "sse raw", "sse text", "bytes", "memo", "no memo"] as Path[])
  console.log(`  ${p.padEnd(8)} parse + filter + serialize: p50 ${pct(times[p], 0.5).toFixed(2)} ms, p99 ${pct(times[p], 0.99).toFixed(2)} ms`);
