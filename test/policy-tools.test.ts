import { describe, expect, it } from "vitest";
import { argRefs, confine, toJson, toolsOf } from "@/lib/policy/cedar-tools";
import { compileRule, policyRuleSchema } from "@/lib/policy/rule";

const S = "srv_x";

describe("toolsOf: which tools a policy can apply to (the engine's slicing must be sound)", () => {
  const cases: [string, string, string[] | null][] = [
    ["resource == scope", `permit (principal, action, resource == Tool::"${S}/a");`, ["a"]],
    ["resource in set, in a when conjunction", `forbid (principal, action, resource) when { context.args has n && resource in [Tool::"${S}/a", Tool::"${S}/b"] };`, ["a", "b"]],
    ["no resource test", `forbid (principal, action, resource) when { context.client == "x" };`, null],
    ["tool test inside an unless", `forbid (principal, action, resource) unless { resource == Tool::"${S}/a" };`, null],
    ["tool test inside a disjunction", `permit (principal, action, resource) when { resource == Tool::"${S}/a" || context.client == "x" };`, null],
    ["a tool of another server", `permit (principal, action, resource) when { resource == Tool::"srv_y/a" };`, null],
    ["resource in a server", `permit (principal, action, resource in Server::"${S}");`, null],
  ];
  it.each(cases)("%s", (_n, text, expected) => {
    expect(toolsOf(toJson(text), S)?.sort() ?? null).toEqual(expected);
  });
});

describe("rule compilation", () => {
  const base = { effect: "forbid", actions: ["call_tool"], tools: ["refund"], principals: { users: [], groups: [] }, clients: [], conditions: [] };
  it("guards every argument test with has and quotes names", () => {
    const rule = policyRuleSchema.parse({
      ...base,
      conditions: [
        { arg: "amount", op: "gt", value: 100 },
        { arg: "project", op: "like", value: 'prod"*' },
      ],
    });
    const text = compileRule(rule, S, { name: "limit" });
    expect(text).toContain('(context.args has "amount" && context.args["amount"] > 100)');
    expect(text).toContain('context.args["project"] like "prod\\"*"');
    expect(toolsOf(toJson(text), S)).toEqual(["refund"]);
    expect(argRefs(toJson(text)).sort()).toEqual(["amount", "project"]);
  });
  it("refuses rules that cannot be compiled safely", () => {
    expect(policyRuleSchema.safeParse({ ...base, tools: [] }).success).toBe(false);
    expect(policyRuleSchema.safeParse({ ...base, conditions: [{ arg: "amount", op: "gt", value: "lots" }] }).success).toBe(false);
    expect(policyRuleSchema.safeParse({ ...base, conditions: [{ arg: "a", op: "eq", value: "x\u0000y" }] }).success).toBe(false);
    expect(policyRuleSchema.safeParse({ ...base, conditions: [{ arg: 'a" || true', op: "present" }] }).success).toBe(false);
  });
  it("wraps hours across midnight", () => {
    const text = compileRule(policyRuleSchema.parse({ ...base, time: { fromHour: 18, toHour: 8 } }), S, { name: "night" });
    expect(text).toContain("(context.time.hour >= 18 || context.time.hour < 8)");
  });
  it("confinement adds the tenant and server whatever the policy's own scope", () => {
    const text = confine(toJson("permit (principal, action, resource);"), ["ten_a"], S);
    expect(text).toContain('principal in Tenant::"ten_a"');
    expect(text).toContain(`resource in Server::"${S}"`);
  });
});
