import { describe, expect, it } from "vitest";
import { callHash, similarHash, type BundleApproval } from "@/lib/enforcement/approval";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decide, decideOnHeaders, decisionView, listFilter } from "@/lib/enforcement/decide";
import { compileRule, policyRuleSchema } from "@/lib/policy/rule";
import { compileOf, contentOf, policy, principal, snapshotOf, toolDef } from "./decide-fixtures";

const time = new Date("2026-11-25T12:00:00Z");
const servers = [
  {
    id: "srv_bank",
    tenantIds: ["ten_a", "ten_b"],
    tools: [
      { name: "transfer", properties: { amount: { type: "integer" }, to: { type: "string" } } },
      { name: "balance", properties: {} },
    ],
    mapping: { bank: ["transfer", "balance"] },
  },
];
const approvalForbid = policy(
  "pol_big",
  "ten_a",
  "srv_bank",
  `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource == Tool::"srv_bank/transfer") when { context.args has amount && context.args.amount > 1000 };`,
);
const plainForbid = policy("pol_no_evil", "ten_a", "srv_bank", `forbid (principal, action, resource) when { context.args has to && context.args.to == "evil" };`);
const base = contentOf(snapshotOf(servers, [approvalForbid, plainForbid]));
const p = principal({ scopes: ["bank"], user: "https://as.example.com#alice" });
const subject = { tenantId: "ten_a", serverId: "srv_bank", tool: "transfer", user: p.user, client: p.client };
const withApprovals = (list: BundleApproval[]): BundleContent => ({ ...base, approvals: list });
const call = (content: BundleContent, args: Record<string, unknown>, over: Partial<Parameters<typeof decide>[1]> = {}) =>
  decide(decisionView(content), { method: "tools/call", serverId: "srv_bank", tool: "transfer", principal: p, args, time, ...over });
const approved = (hash: string, over: Partial<BundleApproval> = {}): BundleApproval => ({
  id: "apr_01",
  tenantId: "ten_a",
  hash,
  scope: "call",
  status: "approved",
  decidedBy: "bob@example.com",
  reason: "",
  expiresAt: "2026-11-25T12:10:00Z",
  ...over,
});

describe("decide(): the approval stage", () => {
  it("compile carries @approval of a forbid into the policy metadata", () => {
    expect(base.policies.pol_big?.approval).toEqual({ approvers: ["finance-approvers"] });
    expect(base.policies.pol_no_evil?.approval).toBeUndefined();
    expect(base.cedar.policies.pol_big).toContain("@approval");
    const r = compileOf(snapshotOf(servers, [policy("pol_p", "ten_a", "srv_bank", `@approval("x")\npermit (principal, action, resource);`)]));
    expect(r.content.policies.pol_p?.approval).toBeUndefined();
    expect(r.warnings.join()).toMatch(/@approval applies to a forbid/);
  });

  it("a call under the threshold is allowed; over it, denied at stage approval naming policies, approvers and the call hash", () => {
    expect(call(base, { amount: 10, to: "x" })).toMatchObject({ decision: "allow", stage: "policy" });
    const d = call(base, { amount: 5000, to: "x" });
    expect(d).toMatchObject({ decision: "deny", stage: "approval", determining: ["pol_big"], stepUpScopes: [] });
    expect(d.approval).toEqual({ policies: ["pol_big"], approvers: ["finance-approvers"], callHash: callHash(subject, { amount: 5000, to: "x" }), status: "required" });
    expect(d.reason).toMatch(/needs approval from finance-approvers/);
  });

  it("an unexpired approval of exactly this call allows it; other arguments, another user, client or tenant are not covered", () => {
    const args = { to: "x", amount: 5000 };
    const c = withApprovals([approved(callHash(subject, args))]);
    const d = call(c, { amount: 5000, to: "x" }); // key order does not matter (RFC 8785)
    expect(d).toMatchObject({ decision: "allow", stage: "approval", approval: { status: "approved", id: "apr_01" } });
    expect(d.determining).toEqual(["scope:srv_bank:bank"]);
    expect(call(c, { amount: 5001, to: "x" })).toMatchObject({ decision: "deny", stage: "approval", approval: { status: "required" } });
    expect(call(c, args, { principal: { ...p, user: "https://as.example.com#mallory" } })).toMatchObject({ decision: "deny", stage: "approval" });
    expect(call(c, args, { principal: { ...p, client: "other" } })).toMatchObject({ decision: "deny", stage: "approval" });
    // Same hash, other tenant's line: never covers ten_a.
    const foreign = withApprovals([approved(callHash(subject, args), { tenantId: "ten_b" })]);
    expect(call(foreign, args)).toMatchObject({ decision: "deny", stage: "approval", approval: { status: "required" } });
  });

  it("expiry and rejection deny with the reason", () => {
    const args = { amount: 5000, to: "x" };
    const h = callHash(subject, args);
    expect(call(withApprovals([approved(h, { expiresAt: "2026-11-25T11:59:59Z" })]), args)).toMatchObject({
      decision: "deny",
      stage: "approval",
      approval: { status: "expired" },
      reason: expect.stringMatching(/expired at 2026-11-25T11:59:59Z/),
    });
    expect(call(withApprovals([approved(h, { expiresAt: "not a date" })]), args)).toMatchObject({ decision: "deny", approval: { status: "expired" } });
    const rej = withApprovals([approved(h, { status: "rejected", reason: "not this month" })]);
    expect(call(rej, args)).toMatchObject({ decision: "deny", stage: "approval", approval: { status: "rejected" }, reason: "rejected by bob@example.com (apr_01): not this month" });
    // A newer approval after a rejection allows.
    expect(call(withApprovals([approved(h, { status: "rejected" }), approved(h, { id: "apr_02" })]), args)).toMatchObject({ decision: "allow", stage: "approval" });
  });

  it("approve similar calls covers other arguments of the same tool, user and client until it expires", () => {
    const c = withApprovals([approved(similarHash(subject), { scope: "similar" })]);
    expect(call(c, { amount: 7000, to: "y" })).toMatchObject({ decision: "allow", stage: "approval" });
    expect(call(c, { amount: 7000, to: "y" }, { time: new Date("2026-11-25T12:10:00Z") })).toMatchObject({ decision: "deny", stage: "approval" });
    // A call hash line of scope "similar" never matches an exact call hash and vice versa.
    expect(call(withApprovals([approved(similarHash(subject), { scope: "call" })]), { amount: 7000, to: "y" })).toMatchObject({ decision: "deny" });
  });

  it("a plain forbid always wins, even with an approval of the call", () => {
    const args = { amount: 5000, to: "evil" };
    const c = withApprovals([approved(callHash(subject, args))]);
    const d = call(c, args);
    expect(d).toMatchObject({ decision: "deny", stage: "policy" });
    expect(d.determining).toContain("pol_no_evil");
    expect(d.approval).toBeUndefined();
  });

  it("without a permit it is a plain default deny (approval never grants what no policy permits)", () => {
    const d = call(withApprovals([approved(callHash(subject, { amount: 5000 }))]), { amount: 5000 }, { principal: { ...p, scopes: [] } });
    expect(d).toMatchObject({ decision: "deny", stage: "policy" });
    expect(d.approval).toBeUndefined();
  });

  it("an approval-only forbid on listing does not hide the tool; headers alone never decide a call that may need approval", () => {
    const content = contentOf(snapshotOf(servers, [policy("pol_all", "ten_a", "srv_bank", `@approval("ops")\nforbid (principal, action, resource == Tool::"srv_bank/transfer");`)]));
    const view = decisionView(content);
    const f = listFilter(view, { serverId: "srv_bank", principal: p, time }, [toolDef("transfer", { amount: { type: "integer" }, to: { type: "string" } }), toolDef("balance", {})]);
    expect(f.kept.map((t) => t.name)).toEqual(["transfer", "balance"]);
    expect(decide(view, { method: "tools/call", serverId: "srv_bank", tool: "transfer", principal: p, args: {}, time })).toMatchObject({ decision: "deny", stage: "approval" });
    expect(decideOnHeaders(view, { method: "tools/call", serverId: "srv_bank", name: "transfer", principal: p, time })).toEqual({ final: null });
  });

  it("the rule builder's 'require approval from <group>' compiles to an @approval forbid; a permit cannot ask", () => {
    const rule = policyRuleSchema.parse({ effect: "forbid", tools: ["transfer"], conditions: [{ arg: "amount", op: "gt", value: 1000 }], approval: "finance-approvers" });
    const text = compileRule(rule, "srv_bank", { name: "big" });
    expect(text).toMatch(/^@id\("big"\)\n@approval\("finance-approvers"\)\nforbid/);
    const content = contentOf(snapshotOf(servers, [{ ...policy("pol_rule", "ten_a", "srv_bank", text), kind: "rule" }]));
    expect(content.policies.pol_rule?.approval).toEqual({ approvers: ["finance-approvers"] });
    expect(decide(decisionView(content), { method: "tools/call", serverId: "srv_bank", tool: "transfer", principal: p, args: { amount: 5000 }, time })).toMatchObject({
      decision: "deny",
      stage: "approval",
    });
    expect(policyRuleSchema.safeParse({ effect: "permit", tools: ["transfer"], approval: "x" }).success).toBe(false);
    expect(policyRuleSchema.safeParse({ effect: "forbid", tools: ["transfer"], approval: 'a"b' }).success).toBe(false);
  });
});
