import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { PolicyEngine, preparsedPolicySets, type DecisionRequest } from "@/lib/enforcement/engine";
import { compileRule } from "@/lib/policy/rule";
import type { PolicyRule } from "@/db/schema";

// cedar-wasm cannot free a preparsed policy set: engines must share them, or a
// control plane that builds an engine per simulation grows without bound.
describe("preparsed policy sets are shared between engines", () => {
  const golden = JSON.parse(readFileSync(path.join(__dirname, "golden", "argument-conditions.json"), "utf8")) as {
    snapshot: Omit<RegistrySnapshot, "policies"> & { policies: (RegistrySnapshot["policies"][number] & { rule?: PolicyRule })[] };
  };
  const snapshot = (drop = 0): RegistrySnapshot => ({
    ...golden.snapshot,
    policies: golden.snapshot.policies.slice(drop).map(({ rule, ...p }) => ({ ...p, cedar: rule ? compileRule(rule, p.serverId, { name: p.name }) : p.cedar })),
  });
  const compile = (snap: RegistrySnapshot, revision: number) => compileBundle(snap, { fleetId: "flt_p", revision, parentRevision: null, createdAt: new Date().toISOString() }).content;
  const req: DecisionRequest = { action: "call_tool", serverId: "srv_a", tool: "refund", tenantId: "ten_a", user: "alice", client: "c", scopes: ["tickets:write"], args: { amount: 500 } };

  /** An engine that decides with cedar-wasm alone (the JS evaluator, lib/enforcement/cedar-js.ts, needs no preparsed set). */
  const wasmEngine = (content: ReturnType<typeof compile>) => Object.assign(new PolicyEngine(content), { jsEvaluator: false });

  it("the same slice in a new engine (even another revision) parses nothing new; changed policies do", () => {
    const first = wasmEngine(compile(snapshot(), 1));
    const decided = first.decide(req);
    const after = preparsedPolicySets();
    for (let i = 2; i < 50; i++) expect(wasmEngine(compile(snapshot(), i)).decide(req)).toEqual(decided);
    expect(preparsedPolicySets()).toBe(after);
    // Dropping the refund limit changes the refund slice: one new set, and a different answer.
    const changed = wasmEngine(compile(snapshot(1), 99)).decide(req);
    expect(preparsedPolicySets()).toBe(after + 1);
    expect(changed.decision).not.toBe(decided.decision);
  });

  it("a slice the JS evaluator decides is not preparsed in cedar-wasm at all, and answers the same", () => {
    const content = compile(snapshot(1), 100);
    const before = preparsedPolicySets();
    const js = new PolicyEngine(content);
    const decided = js.decide(req);
    expect(preparsedPolicySets()).toBe(before);
    expect(wasmEngine(content).decide(req)).toEqual(decided);
  });
});
