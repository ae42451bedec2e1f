import { describe, expect, it } from "vitest";
import { decide, decisionView } from "@/lib/enforcement/decide";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { compileOf, principal } from "./decide-fixtures";
import { snapshot } from "./resource-fixtures";

// Issue 11: logging/setLevel is the bundle's decision per server (BundleServer.upstreamLogging), default deny.
const time = new Date("2026-11-25T12:00:00Z");
const base = compileOf(snapshot([])).content;
const withLogging = (c: BundleContent, over: Partial<BundleContent> = {}): BundleContent => ({
  ...c,
  servers: c.servers.map((s) => (s.id === "srv_a" ? { ...s, upstreamLogging: true as const } : s)),
  ...over,
});
const setLevel = (content: BundleContent, p = principal(), serverId = "srv_a") => decide(decisionView(content), { method: "logging/setLevel", serverId, principal: p, time });

describe("logging/setLevel", () => {
  it("is denied by default, with a reason naming the setting; a bundle without the setting hashes as before (no field)", () => {
    expect(base.servers.every((s) => !("upstreamLogging" in s))).toBe(true);
    const d = setLevel(base);
    expect(d).toMatchObject({ decision: "deny", stage: "method" });
    expect(d.reason).toMatch(/upstreamLogging setting is off/);
    expect(d.reason).toMatch(/credentials/);
  });

  it("is allowed (stage logging) on a server whose upstreamLogging setting is on, and only on that server", () => {
    const content = withLogging(base);
    expect(setLevel(content)).toMatchObject({ decision: "allow", stage: "logging" });
    expect(setLevel(content, principal({ tenantId: "ten_b" }), "srv_b")).toMatchObject({ decision: "deny", stage: "method" });
  });

  it("still runs the revocation, server/tenant and client-approval checks", () => {
    const content = withLogging(base);
    const p = principal();
    expect(setLevel(withLogging(base, { revocations: [{ tenantId: p.tenantId, user: p.user, before: "2030-01-01T00:00:00Z" }] }), p)).toMatchObject({ decision: "deny", stage: "revoked" });
    expect(setLevel(content, principal({ tenantId: "ten_z" }))).toMatchObject({ decision: "deny", stage: "server" });
    expect(setLevel(content, p, "srv_unknown")).toMatchObject({ decision: "deny", stage: "server" });
    expect(setLevel(withLogging(base, { clientApproval: [p.tenantId], approvedClients: [] }), p)).toMatchObject({ decision: "deny", stage: "client" });
    expect(setLevel(withLogging(base, { clientApproval: [p.tenantId], approvedClients: [{ tenantId: p.tenantId, clientId: p.client }] }), p)).toMatchObject({ decision: "allow", stage: "logging" });
  });
});
