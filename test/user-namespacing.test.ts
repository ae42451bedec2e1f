import { describe, expect, it } from "vitest";
import { decide, decisionView } from "@/lib/enforcement/decide";
import { userAttrs } from "@/lib/enforcement/engine";
import type { PolicyRule } from "@/db/schema";
import { compileRule } from "@/lib/policy/rule";
import { contentOf, policy, principal, snapshotOf } from "./decide-fixtures";

// Users are namespaced by issuer (`<iss>#<sub>`, issue 10.1). A rule written with a bare subject must
// keep matching that subject's tokens: above all a forbid, which would otherwise stop applying (fail open).
const servers = [{ id: "srv_a", tenantIds: ["ten_a"], tools: [{ name: "refund", properties: { amount: { type: "integer" } } }], mapping: { "tickets:write": ["refund"] } }];
const time = new Date("2026-11-25T12:00:00Z");
const rule = (users: string[]): PolicyRule =>
  ({ effect: "forbid", actions: ["call_tool"], tools: ["refund"], principals: { users, groups: [] }, clients: [], conditions: [] }) as unknown as PolicyRule;

function decideFor(users: string[], user: string) {
  const content = contentOf(snapshotOf(servers, [policy("pol_block", "ten_a", "srv_a", compileRule(rule(users), "srv_a", { name: "block" }))]));
  return decide(decisionView(content), { method: "tools/call", serverId: "srv_a", tool: "refund", principal: principal({ user, scopes: ["tickets:write"] }), args: { amount: 1 }, time });
}

describe("rules on users under issuer-qualified user ids", () => {
  it("a forbid naming a bare subject still stops that subject's calls from any trusted issuer", () => {
    expect(decideFor(["alice"], "https://as.example#alice")).toMatchObject({ decision: "deny", determining: ["pol_block"] });
    expect(decideFor(["alice"], "https://other.example#alice")).toMatchObject({ decision: "deny", determining: ["pol_block"] });
    expect(decideFor(["alice"], "https://as.example#bob")).toMatchObject({ decision: "allow" });
  });

  it("a qualified id names exactly one issuer's user", () => {
    expect(decideFor(["https://as.example#alice"], "https://as.example#alice")).toMatchObject({ decision: "deny" });
    expect(decideFor(["https://as.example#alice"], "https://other.example#alice")).toMatchObject({ decision: "allow" });
  });

  it("splits a user id at its first #", () => {
    expect(userAttrs("https://as.example/t#a#b")).toEqual({ iss: "https://as.example/t", sub: "a#b" });
    expect(userAttrs("alice")).toEqual({ iss: "", sub: "alice" });
  });
});
