import { describe, expect, it } from "vitest";
import { isRevoked, unapprovedClient } from "@/agent/live-index";
import type { BundleContent } from "@/lib/enforcement/bundle";
import type { Principal } from "@/lib/enforcement/token";

const at = (iso: string) => Date.parse(iso) / 1000;
const alice: Principal = {
  issuer: "https://as",
  tenantId: "ten_a",
  user: "alice",
  client: "cli",
  scopes: [],
  groups: [],
  actors: [],
  iat: at("2026-11-27T10:00:00Z"),
  exp: at("2026-11-27T11:00:00Z"),
};
const content = (live: Partial<BundleContent>) => ({ revocations: [], approvedClients: [], masking: [], ...live }) as unknown as BundleContent;

describe("the agent's index of live bundle sections", () => {
  it("revokes tokens issued before the cut-off, matching tenant, user, client and server when named", () => {
    const c = content({ revocations: [{ tenantId: "ten_a", user: "alice", client: "cli", serverId: "srv_1", before: "2026-11-27T10:00:01.000Z" }] });
    expect(isRevoked(c, alice, "srv_1")).toBe(true);
    expect(isRevoked(c, alice, "srv_2")).toBe(false);
    expect(isRevoked(c, { ...alice, tenantId: "ten_b" }, "srv_1")).toBe(false);
    expect(isRevoked(c, { ...alice, client: "other" }, "srv_1")).toBe(false);
    // A token issued after the cut-off (the user signed in again) passes.
    expect(isRevoked(c, { ...alice, iat: at("2026-11-27T10:00:02Z") }, "srv_1")).toBe(false);
  });

  it("applies revocations that name no tenant to every tenant, and fails closed on an unreadable cut-off", () => {
    expect(isRevoked(content({ revocations: [{ client: "cli", before: "2026-11-27T12:00:00Z" }] }), { ...alice, tenantId: "ten_z" }, "srv_9")).toBe(true);
    expect(isRevoked(content({ revocations: [{ user: "alice", before: "not a date" }] }), { ...alice, iat: at("2030-01-01T00:00:00Z") }, "srv_1")).toBe(true);
  });

  it("asks for approval only in tenants that require it, and only of clients not approved there", () => {
    const c = content({ clientApproval: ["ten_a"], approvedClients: [{ tenantId: "ten_b", clientId: "cli" }] });
    expect(unapprovedClient(c, alice)).toBe("client cli is not approved for tenant ten_a");
    expect(unapprovedClient(c, { ...alice, tenantId: "ten_b" })).toBeNull();
    const approved = content({ clientApproval: ["ten_a"], approvedClients: [{ tenantId: "ten_a", clientId: "cli" }] });
    expect(unapprovedClient(approved, alice)).toBeNull();
    // Older bundles without the section require nothing.
    expect(unapprovedClient(content({}), alice)).toBeNull();
  });
});
