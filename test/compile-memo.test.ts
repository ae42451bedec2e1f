import { describe, expect, it } from "vitest";
import { compileOf, policy, snapshotOf, type ServerSpec } from "./decide-fixtures";

/** lib/bundles/compile.ts remembers Cedar conversions by exact policy text, tenants and server across compiles. */
describe("compile: remembered Cedar conversions", () => {
  const servers: ServerSpec[] = [
    { id: "srv_a", tenantIds: ["ten_a", "ten_b"], tools: [{ name: "transfer", properties: { amount: { type: "integer" } } }], mapping: { bank: ["transfer"] } },
    { id: "srv_b", tenantIds: ["ten_b"], tools: [{ name: "transfer", properties: { amount: { type: "integer" } } }], mapping: {} },
  ];
  const text = `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 10 };`;

  it("a second compile gives the same content; the same text for another tenant or server is confined to that one", () => {
    const snap = snapshotOf(servers, [policy("pol_a", "ten_a", "srv_a", text), policy("pol_b", "ten_b", "srv_a", text), policy("pol_c", "ten_b", "srv_b", text)]);
    const first = compileOf(snap);
    expect(first.issues).toEqual([]);
    const again = compileOf(snap);
    expect(again.content).toEqual(first.content);
    const p = again.content.cedar.policies;
    expect(p.pol_a).toContain('Tenant::"ten_a"');
    expect(p.pol_a).toContain('Server::"srv_a"');
    expect(p.pol_b).toContain('Tenant::"ten_b"');
    expect(p.pol_b).not.toContain('Tenant::"ten_a"');
    expect(p.pol_c).toContain('Server::"srv_b"');
    expect(p.pol_c).not.toContain('Server::"srv_a"');
  });

  it("a changed text is converted anew, and a text that fails is an issue every time", () => {
    const changed = compileOf(snapshotOf(servers, [policy("pol_a", "ten_a", "srv_a", text.replace("> 10", "> 20"))]));
    expect(changed.content.cedar.policies.pol_a).toContain("20");
    for (let i = 0; i < 2; i++) expect(compileOf(snapshotOf(servers, [policy("pol_x", "ten_a", "srv_a", "permit (principal, action, resource")])).issues.length).toBeGreaterThan(0);
  });
});
