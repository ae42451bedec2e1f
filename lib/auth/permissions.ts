import type { GlobalRole, TenantRole, TokenRole } from "@/db/schema";

export const permissions = [
  "tenants.read",
  "tenants.create",
  "tenants.write",
  "members.read",
  "members.write",
  "users.manage",
  "servers.read",
  "servers.write",
  "catalog.write",
  "catalog.approve",
  "scopes.write",
  "policies.write",
  "trail.read",
  "tokens.manage",
  // Upstream credential vault: create, rotate, retire (metadata is read with servers.read; secrets are never read).
  "vault.write",
  // Delegated grants and OAuth clients: revoke, import, approve or block clients.
  "grants.write",
  "decisions.read",
  "masking.write",
] as const;

export type Permission = (typeof permissions)[number];

const read: Permission[] = ["tenants.read", "members.read", "servers.read", "trail.read", "decisions.read"];

/** What a role may do inside a tenant it holds (owners hold every tenant). */
export const rolePermissions: Record<TokenRole, ReadonlySet<Permission>> = {
  owner: new Set(permissions),
  admin: new Set<Permission>([
    ...read,
    "tenants.write",
    "members.write",
    "servers.write",
    "catalog.write",
    "catalog.approve",
    "scopes.write",
    "policies.write",
    "tokens.manage",
    "vault.write",
    "grants.write",
    "masking.write",
  ]),
  auditor: new Set(read),
};

/**
 * Who is acting: a signed-in user or an API token. Roles are resolved from
 * the database on every request, never from the session cookie alone.
 */
export interface Actor {
  type: "user" | "token";
  id: string;
  label: string;
  userId: string;
  /** Global role: owners hold every tenant; global auditors read every tenant. */
  globalRole: GlobalRole;
  /** Roles per tenant id, from memberships (or the token's single tenant). */
  tenantRoles: ReadonlyMap<string, TenantRole>;
  /**
   * Set for a user still holding a one-time password: such an actor holds no
   * role and may only change its password (issue 17.7).
   */
  mustChangePassword?: boolean;
}

/** The role the actor holds in this tenant, if any. */
export function roleIn(actor: Actor, tenantId: string): TokenRole | undefined {
  if (actor.mustChangePassword) return undefined;
  if (actor.globalRole === "owner") return "owner";
  const role = actor.tenantRoles.get(tenantId);
  if (role) return role;
  if (actor.globalRole === "auditor") return "auditor";
  return undefined;
}

/** Whether the actor may do `perm` in the given tenant. */
export function can(actor: Actor, perm: Permission, tenantId: string): boolean {
  const role = roleIn(actor, tenantId);
  return role !== undefined && rolePermissions[role].has(perm);
}

/** Whether the actor may do `perm` regardless of tenant (owner-level actions). */
export function canGlobally(actor: Actor, perm: Permission): boolean {
  if (actor.mustChangePassword) return false;
  if (actor.globalRole === "owner") return true;
  if (actor.globalRole === "auditor") return rolePermissions.auditor.has(perm) && perm !== "tenants.create";
  return false;
}

/** Whether the actor sees every tenant (owner or global auditor). */
export function seesAllTenants(actor: Actor): boolean {
  if (actor.mustChangePassword) return false;
  return actor.globalRole === "owner" || actor.globalRole === "auditor";
}
