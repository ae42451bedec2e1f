// Pure role-table tests: the only place where Actor objects are written by hand.
import { describe, expect, it } from "vitest";
import type { GlobalRole, TenantRole } from "@/db/schema";
import { can, canGlobally, permissions, roleIn, seesAllTenants, type Actor, type Permission } from "@/lib/auth/permissions";

const A = "ten_a";
const B = "ten_b";

function actor(globalRole: GlobalRole, roles: Record<string, TenantRole> = {}): Actor {
  return { type: "user", id: "usr_x", label: "x@test", userId: "usr_x", globalRole, tenantRoles: new Map(Object.entries(roles)) };
}

const readPerms: Permission[] = ["tenants.read", "members.read", "servers.read", "trail.read", "decisions.read"];
const writePerms = permissions.filter((p) => !readPerms.includes(p));
const allowed = (a: Actor, tenantId: string) => permissions.filter((p) => can(a, p, tenantId));

describe("role table", () => {
  it("has write permissions to check (guards the table itself)", () => {
    expect(writePerms).toEqual(expect.arrayContaining(["servers.write", "catalog.write", "catalog.approve", "scopes.write", "members.write", "tokens.manage", "tenants.create", "users.manage"]));
  });

  it("tenant auditor reads its tenant and writes nothing", () => {
    const a = actor("member", { [A]: "auditor" });
    expect(allowed(a, A).sort()).toEqual([...readPerms].sort());
    for (const p of writePerms) expect(can(a, p, A), p).toBe(false);
    expect(allowed(a, B)).toEqual([]);
    for (const p of permissions) expect(canGlobally(a, p), p).toBe(false);
  });

  it("tenant admin manages its own tenant only", () => {
    const a = actor("member", { [A]: "admin" });
    for (const p of ["servers.write", "catalog.write", "catalog.approve", "scopes.write", "members.write", "tokens.manage", "tenants.write"] as Permission[]) {
      expect(can(a, p, A), p).toBe(true);
      expect(can(a, p, B), p).toBe(false);
    }
    expect(allowed(a, B)).toEqual([]);
    // Creating tenants and managing users are owner-level, never tenant-level.
    expect(can(a, "tenants.create", A)).toBe(false);
    expect(can(a, "users.manage", A)).toBe(false);
    for (const p of permissions) expect(canGlobally(a, p), p).toBe(false);
    expect(seesAllTenants(a)).toBe(false);
  });

  it("admin in one tenant and auditor in another keeps the roles apart", () => {
    const a = actor("member", { [A]: "admin", [B]: "auditor" });
    expect(can(a, "servers.write", A)).toBe(true);
    expect(can(a, "servers.write", B)).toBe(false);
    expect(can(a, "servers.read", B)).toBe(true);
  });

  it("owner may do everything in every tenant, including unknown ones", () => {
    const a = actor("owner");
    for (const t of [A, B, "ten_never_seen"]) expect(allowed(a, t)).toEqual([...permissions]);
    for (const p of permissions) expect(canGlobally(a, p), p).toBe(true);
    expect(roleIn(a, A)).toBe("owner");
    expect(seesAllTenants(a)).toBe(true);
  });

  it("global auditor reads every tenant and writes none", () => {
    const a = actor("auditor");
    for (const t of [A, B, "ten_never_seen"]) {
      expect(allowed(a, t).sort()).toEqual([...readPerms].sort());
      expect(roleIn(a, t)).toBe("auditor");
    }
    expect(canGlobally(a, "tenants.read")).toBe(true);
    expect(canGlobally(a, "trail.read")).toBe(true);
    for (const p of writePerms) expect(canGlobally(a, p), p).toBe(false);
    expect(seesAllTenants(a)).toBe(true);
  });

  it("global auditor with an admin membership administers that tenant only", () => {
    const a = actor("auditor", { [A]: "admin" });
    expect(can(a, "servers.write", A)).toBe(true);
    expect(can(a, "servers.write", B)).toBe(false);
    expect(can(a, "servers.read", B)).toBe(true);
  });

  it("a member without memberships has no access at all", () => {
    const a = actor("member");
    expect(allowed(a, A)).toEqual([]);
    expect(roleIn(a, A)).toBeUndefined();
    for (const p of permissions) expect(canGlobally(a, p), p).toBe(false);
    expect(seesAllTenants(a)).toBe(false);
  });
});
