import { describe, expect, it } from "vitest";
import { decide, decisionView, driftedAgainst, listFilter } from "@/lib/enforcement/decide";
import { PolicyEngine } from "@/lib/enforcement/engine";
import { compileOf, contentOf, policy, principal, snapshotOf, toolDef } from "./decide-fixtures";

const time = new Date("2026-11-25T12:00:00Z");

const servers = [
  {
    id: "srv_a",
    tenantIds: ["ten_a", "ten_b"],
    tools: [
      { name: "get_ticket", properties: { id: { type: "string" } } },
      { name: "refund", properties: { amount: { type: "integer" } } },
    ],
    mapping: { "tickets:read": ["get_ticket"], "tickets:write": ["refund"] },
  },
  { id: "srv_b", tenantIds: ["ten_a"], tools: [{ name: "transfer", properties: { amount: { type: "string" } } }] },
];

describe("decide(): one decision with every check", () => {
  const content = contentOf(snapshotOf(servers, [policy("pol_forbid_big", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`)]));
  const view = decisionView(content);
  const call = (over: Partial<Parameters<typeof decide>[1]> = {}) =>
    decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: ["tickets:read"] }), args: {}, time, ...over });

  it("allows through a scope mapping, and denies by default with the granting scopes for step-up", () => {
    expect(call()).toMatchObject({ decision: "allow", stage: "policy", stepUpScopes: [] });
    const d = call({ principal: principal({ scopes: [] }) });
    expect(d).toMatchObject({ decision: "deny", stage: "policy", determining: [], stepUpScopes: ["tickets:read"] });
  });

  it("a forbid that determined the denial gives no step-up", () => {
    const d = call({ tool: "refund", args: { amount: 500 }, principal: principal({ scopes: [] }) });
    expect(d).toMatchObject({ decision: "deny", stage: "policy", determining: ["pol_forbid_big"], stepUpScopes: [] });
  });

  it("passes initialize, ping and notifications, lets tools/list through to its filter, and denies other methods", () => {
    for (const m of ["initialize", "ping", "notifications/initialized"]) expect(call({ method: m, tool: null })).toMatchObject({ decision: "allow", stage: "passthrough" });
    expect(call({ method: "tools/list", tool: null })).toMatchObject({ decision: "allow", stage: "list" });
    expect(call({ method: "resources/read", tool: null })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(call({ method: "tasks/result", tool: null })).toMatchObject({ decision: "deny", stage: "method", reason: "method tasks/result is not allowed through this agent" });
  });

  it("denies a revoked grant (any method), an unapproved client and a drifted tool", () => {
    const live = { ...content, revocations: [{ tenantId: "ten_a", user: "alice", before: "2026-11-25T11:30:00.000Z" }], clientApproval: ["ten_b"], approvedClients: [] };
    const v = decisionView(live);
    expect(decide(v, { method: "initialize", serverId: "srv_a", principal: principal() })).toMatchObject({ decision: "deny", stage: "revoked" });
    expect(
      decide(v, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: ["tickets:read"], iat: Date.parse("2026-11-25T11:31:00Z") / 1000 }), time }),
    ).toMatchObject({ decision: "allow" });
    expect(decide(v, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ tenantId: "ten_b", scopes: ["tickets:read"] }), time })).toMatchObject({
      decision: "deny",
      stage: "client",
      stepUpScopes: [],
    });
    expect(call({})).toMatchObject({ decision: "allow" });
    expect(decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: [] }), time }, { drifted: new Set(["srv_a/get_ticket"]) })).toMatchObject({
      decision: "deny",
      stage: "drift",
      stepUpScopes: [],
    });
  });

  it("filters tools/list with the same checks", () => {
    const tools = [
      toolDef("get_ticket", { id: { type: "string" } }),
      toolDef("refund", { amount: { type: "integer" } }),
      toolDef("unknown", {}),
      { ...toolDef("refund", { amount: { type: "number" } }) },
    ];
    const r = listFilter(view, { serverId: "srv_a", principal: principal({ scopes: ["tickets:read"] }), time }, tools);
    expect(r.kept.map((t) => t.name)).toEqual(["get_ticket"]);
    expect(r.hidden).toEqual(["refund (not allowed)", "unknown (not approved)", "refund (changed upstream)"]);
    expect(r.changed.map((c) => c.tool)).toEqual(["refund"]);
    expect(r.record).toMatchObject({ decision: "allow", reason: "listed 1 of 4 tools; hidden: refund (not allowed), unknown (not approved), refund (changed upstream)" });
    const drifted = listFilter(view, { serverId: "srv_a", principal: principal({ scopes: ["tickets:read"] }), time }, tools, { drifted: new Set(["srv_a/get_ticket"]) });
    expect(drifted.kept).toEqual([]);
  });

  it("keeps a given engine, and computes the control plane's drift set from latest hashes", () => {
    const engine = new PolicyEngine(content);
    const copy = { ...content };
    expect(decisionView(copy, { engine }).engine).toBe(engine);
    const latest = new Map([
      ["srv_a/get_ticket", "sha256:other"],
      ["srv_a/refund", content.catalogue.find((t) => t.name === "refund")!.hash],
    ]);
    expect([...driftedAgainst(content, latest)]).toEqual(["srv_a/get_ticket"]);
  });

  it("never throws on hostile input", () => {
    expect(decide(view, null as never)).toMatchObject({ decision: "deny", stage: "error" });
    expect(decide(view, { method: 5, serverId: "srv_a", principal: principal() } as never)).toMatchObject({ decision: "deny" });
    expect(call({ args: { id: { deep: { deeper: [1, 2, 3] } } } })).toMatchObject({ decision: "deny", stage: "arguments" });
  });
});

describe("defect 11: fail-closed availability", () => {
  it("an argument named like an Object.prototype member is an ordinary argument", () => {
    const content = contentOf(snapshotOf([{ id: "srv_a", tenantIds: ["ten_a"], tools: [{ name: "get_ticket", properties: { id: { type: "string" } } }], mapping: { r: ["get_ticket"] } }]));
    const view = decisionView(content);
    for (const name of ["constructor", "toString", "hasOwnProperty", "valueOf", "__proto__"]) {
      const args = JSON.parse(`{"id": "T-1", ${JSON.stringify(name)}: "x"}`) as Record<string, unknown>;
      const d = decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: ["r"] }), args, time });
      expect(d.decision, `${name}: ${d.reason}`).toBe("allow");
    }
  });

  it("an argument declared with such a name is typed and readable by policies", () => {
    const snap = snapshotOf(
      [{ id: "srv_a", tenantIds: ["ten_a"], tools: [{ name: "get_ticket", properties: { constructor: { type: "string" }, toString: { type: "integer" } } }], mapping: { r: ["get_ticket"] } }],
      [policy("pol_f", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has constructor && context.args.constructor == "evil" };`)],
    );
    const c = compileOf(snap);
    expect(c.issues).toEqual([]);
    const view = decisionView(c.content);
    const ask = (args: Record<string, unknown>) => decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: ["r"] }), args, time });
    expect(ask({ constructor: "ok", toString: 3 }).decision).toBe("allow");
    expect(ask({ constructor: "evil" })).toMatchObject({ decision: "deny", determining: ["pol_f"] });
    expect(ask({ toString: "three" })).toMatchObject({ decision: "deny", stage: "arguments" });
  });

  it("a same-named argument of another type on another server neither blocks the publish nor changes the typing", () => {
    const c = compileOf(snapshotOf(servers, [policy("pol_forbid_big", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`)]));
    expect(c.issues).toEqual([]);
    const view = decisionView(c.content);
    expect(decide(view, { method: "tools/call", serverId: "srv_a", tool: "refund", principal: principal({ scopes: ["tickets:write"] }), args: { amount: 500 }, time })).toMatchObject({
      decision: "deny",
      determining: ["pol_forbid_big"],
    });
    expect(decide(view, { method: "tools/call", serverId: "srv_a", tool: "refund", principal: principal({ scopes: ["tickets:write"] }), args: { amount: 50 }, time }).decision).toBe("allow");
    // On srv_b, amount is a string: typed as such there.
    const b = decide(view, { method: "tools/call", serverId: "srv_b", tool: "transfer", principal: principal(), args: { amount: 5 }, time });
    expect(b).toMatchObject({ decision: "deny", stage: "arguments" });
  });
});
