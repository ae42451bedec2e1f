/**
 * Property tests over the decision (issue 10, "Adversarial tests as a habit"):
 * random policy sets and requests over a small generated catalogue, checked
 * against an independent model of the semantics. Fixed seed and run counts so
 * the file runs in a few seconds.
 *
 *   - the decision is exactly the model's: an applicable forbid that matches always wins,
 *     then an applicable permit allows, otherwise deny; every evaluation error denies;
 *   - a policy never reaches another tenant or server (determining policies are the
 *     request's own tenant's on the request's server, or that server's scope mappings);
 *   - decide() never throws and denies on hostile input; arguments no policy can read
 *     (odd names such as __proto__, deep values, huge strings) never change a decision.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RegistrySnapshot } from "@/lib/bundles/compile";
import { decide, decisionView, type DecideRequest, type DecisionView } from "@/lib/enforcement/decide";
import { compileOf, policy, snapshotOf, type ServerSpec } from "./decide-fixtures";

const SEED = 20261205;
const TENANTS = ["ten_0", "ten_1", "ten_2"] as const;
const SERVERS: (ServerSpec & { mapping: Record<string, string[]> })[] = [
  // `n` is a Long on srv_0 and a String on srv_1: argument types are per server.
  {
    id: "srv_0",
    tenantIds: ["ten_0", "ten_1"],
    tools: [
      { name: "t0", properties: { a: { type: "string" }, n: { type: "integer" } } },
      { name: "t1", properties: { a: { type: "string" } } },
    ],
    mapping: { s1: ["t0"], s2: ["t1"] },
  },
  {
    id: "srv_1",
    tenantIds: ["ten_1", "ten_2"],
    tools: [
      { name: "t0", properties: { a: { type: "string" }, n: { type: "string" } } },
      { name: "t2", properties: {} },
    ],
    mapping: { s1: ["t0"] },
  },
];
const toolsOf = (serverId: string) => SERVERS.find((s) => s.id === serverId)!.tools.map((t) => t.name);
const admits = (serverId: string, tenantId: string) => SERVERS.find((s) => s.id === serverId)!.tenantIds.includes(tenantId);

type Cond = "none" | "scope" | "group" | "client" | "argA" | "argN" | "err";
interface GenPolicy {
  effect: "permit" | "forbid";
  tenantId: string;
  serverId: string;
  tool: string | null;
  cond: Cond;
}
interface Req {
  serverId: string;
  tenantId: string;
  tool: string;
  scopes: string[];
  groups: string[];
  client: string;
  args: Record<string, unknown>;
}

const condText = (c: Cond, serverId: string): string => {
  switch (c) {
    case "none":
      return "true";
    case "scope":
      return `context.scopes.contains("s1")`;
    case "group":
      return `principal in Group::"g1"`;
    case "client":
      return `context.client == "c1"`;
    case "argA":
      return `context.args has a && context.args.a == "x"`;
    case "argN":
      return serverId === "srv_0" ? `context.args has n && context.args.n > 5` : `context.args has n && context.args.n == "5"`;
    case "err":
      // Long overflow when n != 0: an evaluation error at request time.
      return serverId === "srv_0" ? `context.args has n && context.args.n * 100000000000 * 100000000000 > 0` : "true";
  }
};

/** What a condition gives for a request: true, false or an evaluation error. */
function condOf(c: Cond, serverId: string, r: Req): boolean | "error" {
  const args = r.args;
  switch (c) {
    case "none":
      return true;
    case "scope":
      return r.scopes.includes("s1");
    case "group":
      return r.groups.includes("g1");
    case "client":
      return r.client === "c1";
    case "argA":
      return args.a === "x";
    case "argN":
      return serverId === "srv_0" ? typeof args.n === "number" && args.n > 5 : args.n === "5";
    case "err":
      if (serverId !== "srv_0") return true;
      if (typeof args.n !== "number") return false;
      return args.n !== 0 ? "error" : false;
  }
}

/** The argument type check: declared arguments must have their server's type. */
function argsTypeOk(r: Req): boolean {
  const declared = SERVERS.find((s) => s.id === r.serverId)!.tools.find((t) => t.name === r.tool)?.properties;
  if (!declared && !toolsOf(r.serverId).includes(r.tool)) return true;
  const types = new Map<string, string>();
  for (const t of SERVERS.find((s) => s.id === r.serverId)!.tools) for (const [k, v] of Object.entries(t.properties)) types.set(k, (v as { type: string }).type);
  for (const [k, v] of Object.entries(r.args)) {
    const ty = types.get(k);
    if (!ty || v === null) continue;
    if (ty === "string" && typeof v !== "string") return false;
    if (ty === "integer" && !(typeof v === "number" && Number.isSafeInteger(v))) return false;
  }
  return true;
}

/** The model: which decision, and which policy ids may determine it. */
function model(policies: (GenPolicy & { id: string })[], r: Req): { decision: "allow" | "deny"; forbids: string[]; permits: string[]; error: boolean } {
  if (!admits(r.serverId, r.tenantId) || !toolsOf(r.serverId).includes(r.tool) || !argsTypeOk(r)) return { decision: "deny", forbids: [], permits: [], error: false };
  const forbids: string[] = [];
  const permits: string[] = [];
  let error = false;
  for (const p of policies) {
    if (p.serverId !== r.serverId || p.tenantId !== r.tenantId || !admits(p.serverId, p.tenantId) || (p.tool !== null && p.tool !== r.tool)) continue;
    const v = condOf(p.cond, p.serverId, r);
    if (v === "error") error = true;
    else if (v) (p.effect === "forbid" ? forbids : permits).push(p.id);
  }
  // Scope mappings: permits of every tenant the server admits.
  const mapping = SERVERS.find((s) => s.id === r.serverId)!.mapping as Record<string, string[]>;
  for (const [scope, tools] of Object.entries(mapping)) if (tools.includes(r.tool) && r.scopes.includes(scope)) permits.push(`scope:${r.serverId}:${scope}`);
  if (error) return { decision: "deny", forbids, permits, error };
  if (forbids.length) return { decision: "deny", forbids, permits, error };
  return { decision: permits.length ? "allow" : "deny", forbids, permits, error };
}

const policyArb: fc.Arbitrary<GenPolicy> = fc
  .record({
    effect: fc.constantFrom("permit" as const, "forbid" as const),
    tenantId: fc.constantFrom(...TENANTS),
    serverId: fc.constantFrom("srv_0", "srv_1"),
    toolIx: fc.integer({ min: -1, max: 1 }),
    cond: fc.constantFrom<Cond>("none", "scope", "group", "client", "argA", "argN", "err"),
  })
  .map(({ toolIx, ...p }) => ({ ...p, tool: toolIx < 0 ? null : toolsOf(p.serverId)[toolIx]! }));

const argValue = fc.oneof(fc.constantFrom("x", "y", "5", ""), fc.integer({ min: -3, max: 10 }), fc.constant(null), fc.boolean(), fc.constant(2 ** 60));
const reqArb: fc.Arbitrary<Req> = fc
  .record({
    serverId: fc.constantFrom("srv_0", "srv_1"),
    tenantId: fc.constantFrom(...TENANTS),
    toolIx: fc.integer({ min: 0, max: 2 }),
    scopes: fc.subarray(["s1", "s2"]),
    groups: fc.subarray(["g1", "g2"]),
    client: fc.constantFrom("c1", "c2"),
    a: fc.option(argValue, { nil: undefined }),
    n: fc.option(argValue, { nil: undefined }),
  })
  .map(({ toolIx, a, n, ...r }) => ({ ...r, tool: toolsOf(r.serverId)[toolIx] ?? "nope", args: { ...(a !== undefined ? { a } : {}), ...(n !== undefined ? { n } : {}) } }));

const time = new Date("2026-11-25T12:00:00Z");
const toDecide = (r: Req): DecideRequest => ({
  method: "tools/call",
  serverId: r.serverId,
  tool: r.tool,
  principal: {
    issuer: "https://as",
    tenantId: r.tenantId,
    user: "u",
    client: r.client,
    scopes: r.scopes,
    groups: r.groups,
    actors: [],
    iat: time.getTime() / 1000 - 60,
    exp: time.getTime() / 1000 + 3600,
  },
  args: r.args,
  time,
});

function viewOf(gen: GenPolicy[]): { view: DecisionView; policies: (GenPolicy & { id: string })[] } {
  const policies = gen.map((p, i) => ({ ...p, id: `pol_${String(i).padStart(2, "0")}` }));
  const snap: RegistrySnapshot = snapshotOf(
    SERVERS,
    policies.map((p) =>
      policy(
        p.id,
        p.tenantId,
        p.serverId,
        `${p.effect} (principal, action == Action::"call_tool", resource${p.tool ? ` == Tool::"${p.serverId}/${p.tool}"` : ""}) when { ${condText(p.cond, p.serverId)} };`,
      ),
    ),
  );
  const compiled = compileOf(snap);
  expect(compiled.issues).toEqual([]);
  return { view: decisionView(compiled.content), policies };
}

describe("decision properties", () => {
  it("matches the model: a matching forbid wins, every error denies, nothing crosses a tenant or server", () => {
    fc.assert(
      fc.property(fc.array(policyArb, { maxLength: 8 }), fc.array(reqArb, { minLength: 1, maxLength: 25 }), (gen, reqs) => {
        const { view, policies } = viewOf(gen);
        const byId = new Map(policies.map((p) => [p.id, p]));
        for (const r of reqs) {
          const m = model(policies, r);
          const d = decide(view, toDecide(r));
          expect(d.decision, `${JSON.stringify(r)} → ${d.reason}`).toBe(m.decision);
          if (m.error) expect(d.errors.length).toBeGreaterThan(0);
          else if (m.forbids.length) expect([...d.determining].sort()).toEqual([...m.forbids].sort());
          else if (d.decision === "allow") expect([...d.determining].sort()).toEqual([...m.permits].sort());
          for (const id of [...d.determining, ...d.errors]) {
            const p = byId.get(id);
            if (p) {
              expect(p.tenantId).toBe(r.tenantId);
              expect(p.serverId).toBe(r.serverId);
            } else expect(id.startsWith(`scope:${r.serverId}:`)).toBe(true);
          }
        }
      }),
      { seed: SEED, numRuns: 40 },
    );
  }, 60_000);

  it("arguments no policy can read never change a decision, and hostile input never throws", () => {
    const { view } = viewOf([
      { effect: "permit", tenantId: "ten_0", serverId: "srv_0", tool: null, cond: "none" },
      { effect: "forbid", tenantId: "ten_0", serverId: "srv_0", tool: "t0", cond: "argA" },
    ]);
    const oddName = fc.oneof(fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "prototype", "", " ", "a.b", "\u0000"), fc.string({ maxLength: 20 }));
    const deep = fc.letrec((tie) => ({ node: fc.oneof({ depthSize: "small" }, fc.jsonValue(), fc.array(tie("node"), { maxLength: 3 }), fc.dictionary(oddName, tie("node"), { maxKeys: 3 })) })).node;
    const hostile = fc.oneof(
      deep,
      fc.constant("x".repeat(200_000)),
      fc.constant(Number.NaN),
      fc.constant(Infinity),
      fc.bigInt().map((b) => b as unknown),
    );
    fc.assert(
      fc.property(reqArb, fc.dictionary(oddName, hostile, { maxKeys: 5 }), (r, extra) => {
        const declared = new Set(["a", "n"]);
        const base = decide(view, toDecide(r));
        const args = Object.create(null) as Record<string, unknown>;
        for (const [k, v] of Object.entries(r.args)) args[k] = v;
        for (const k of Object.keys(extra)) if (!declared.has(k)) Object.defineProperty(args, k, { value: extra[k], enumerable: true });
        const withExtra = decide(view, { ...toDecide(r), args });
        expect(withExtra.decision).toBe(base.decision);
        expect([...withExtra.determining].sort()).toEqual([...base.determining].sort());
      }),
      { seed: SEED, numRuns: 300 },
    );
    // Shapes that are not requests at all: a deny, never an exception.
    const junk: unknown[] = [null, undefined, 5, "tools/call", [], { method: "tools/call" }, { method: "tools/call", serverId: "srv_0", principal: { tenantId: 1 } }];
    const getter = {
      method: "tools/call",
      serverId: "srv_0",
      tool: "t0",
      principal: toDecide({ serverId: "srv_0", tenantId: "ten_0", tool: "t0", scopes: [], groups: [], client: "c1", args: {} }).principal,
    };
    Object.defineProperty(getter, "args", {
      get: () => {
        throw new Error("boom");
      },
    });
    junk.push(getter);
    for (const j of junk) expect(decide(view, j as DecideRequest)).toMatchObject({ decision: "deny" });
    fc.assert(
      fc.property(fc.anything(), (j) => {
        const d = decide(view, j as DecideRequest);
        expect(d.decision).toBe("deny");
      }),
      { seed: SEED, numRuns: 200 },
    );
  }, 60_000);
});
