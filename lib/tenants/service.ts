import { and, asc, count, eq, ilike, inArray, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import { memberships, tenantRoles, tenants, users, type Tenant } from "@/db/schema";
import type { InvitationLink, InvitationSettings } from "@/lib/auth/invitations";
import { emailSchema, insertUser } from "@/lib/auth/users";
import { can, canGlobally, seesAllTenants, type Actor, type Permission } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { likePattern, offsetOf, type Page, type PageQuery } from "@/lib/pagination";
import { recordEvent } from "@/lib/trail/record";

export const tenantName = z.string().trim().min(2, "must be at least 2 characters").max(80, "must be at most 80 characters");

export const createTenantInput = z.object({ name: tenantName.describe("Display name, unique") });
export const updateTenantInput = z
  .object({ name: tenantName.optional(), status: z.enum(["active", "disabled"]).optional() })
  .refine((v) => v.name !== undefined || v.status !== undefined, "nothing to change");

export function slugify(name: string): string {
  return (
    name
      .normalize("NFKD")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 60) || "tenant"
  );
}

export function publicTenant(t: Tenant) {
  return { id: t.id, name: t.name, slug: t.slug, status: t.status, createdAt: t.createdAt.toISOString(), updatedAt: t.updatedAt.toISOString() };
}
export type PublicTenant = ReturnType<typeof publicTenant>;

/** The ids of the tenants the actor may read, or "all". */
export function readableTenantIds(actor: Actor): string[] | "all" {
  return seesAllTenants(actor) ? "all" : [...actor.tenantRoles.keys()];
}

/**
 * Loads a tenant and checks the permission against it. A tenant the actor
 * cannot read answers 404, so ids of other tenants reveal nothing.
 */
export async function loadTenant(ctx: Ctx, tenantId: string, perm: Permission): Promise<Tenant> {
  const [t] = await ctx.db.select().from(tenants).where(eq(tenants.id, tenantId));
  if (!t || !can(ctx.actor, "tenants.read", t.id)) throw notFound("Tenant");
  if (!can(ctx.actor, perm, t.id)) throw forbidden();
  return t;
}

function duplicateName(err: unknown): never {
  if (isUniqueViolation(err)) throw new AppError("conflict", "A tenant with this name already exists", [{ path: "name", message: "already exists" }]);
  throw err;
}

export async function listTenants(ctx: Ctx, q: PageQuery): Promise<Page<PublicTenant>> {
  const readable = readableTenantIds(ctx.actor);
  const filters: SQL[] = [];
  if (readable !== "all") {
    if (readable.length === 0) return { items: [], total: 0, page: q.page, pageSize: q.pageSize };
    filters.push(inArray(tenants.id, readable));
  }
  if (q.q) filters.push(or(ilike(tenants.name, likePattern(q.q)), ilike(tenants.slug, likePattern(q.q)))!);
  const where = filters.length ? and(...filters) : undefined;
  const [rows, [total]] = await Promise.all([
    ctx.db.select().from(tenants).where(where).orderBy(asc(tenants.name)).limit(q.pageSize).offset(offsetOf(q)),
    ctx.db.select({ n: count() }).from(tenants).where(where),
  ]);
  return { items: rows.map(publicTenant), total: total?.n ?? 0, page: q.page, pageSize: q.pageSize };
}

export async function getTenant(ctx: Ctx, tenantId: string) {
  return publicTenant(await loadTenant(ctx, tenantId, "tenants.read"));
}

export async function createTenant(ctx: Ctx, input: z.infer<typeof createTenantInput>) {
  if (!canGlobally(ctx.actor, "tenants.create")) throw forbidden("Only owners can create tenants");
  const id = newId("tenant");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(tenants)
        .values({ id, name: input.name, slug: slugify(input.name) })
        .returning();
      const out = publicTenant(row!);
      await recordEvent(tx, ctx.actor, { action: "tenant.create", targetType: "tenant", targetId: id, tenantId: id, after: out });
      return out;
    });
  } catch (err) {
    duplicateName(err);
  }
}

export async function updateTenant(ctx: Ctx, tenantId: string, input: z.infer<typeof updateTenantInput>) {
  const before = await loadTenant(ctx, tenantId, "tenants.write");
  // Disabling cuts a tenant off from everything; only owners may do it.
  if (input.status !== undefined && input.status !== before.status && !canGlobally(ctx.actor, "tenants.create")) {
    throw forbidden("Only owners can disable or enable a tenant");
  }
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .update(tenants)
        .set({ ...(input.name ? { name: input.name, slug: slugify(input.name) } : {}), ...(input.status ? { status: input.status } : {}), updatedAt: new Date() })
        .where(eq(tenants.id, before.id))
        .returning();
      const out = publicTenant(row!);
      await recordEvent(tx, ctx.actor, { action: "tenant.update", targetType: "tenant", targetId: before.id, tenantId: before.id, before: publicTenant(before), after: out });
      return out;
    });
  } catch (err) {
    duplicateName(err);
  }
}

// ---------------------------------------------------------------- members

export const addMemberInput = z.object({
  email: emailSchema,
  role: z.enum(tenantRoles).describe("admin or auditor"),
  name: z.string().trim().max(120).optional().describe("Used when the user does not exist yet"),
});
export const updateMemberInput = z.object({ role: z.enum(tenantRoles) });

export async function listMembers(ctx: Ctx, tenantId: string) {
  const t = await loadTenant(ctx, tenantId, "members.read");
  const rows = await ctx.db
    .select({ userId: users.id, email: users.email, name: users.name, role: memberships.role, disabled: users.disabled, since: memberships.createdAt })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(eq(memberships.tenantId, t.id))
    .orderBy(asc(users.email));
  return rows.map((r) => ({ ...r, since: r.since.toISOString() }));
}

/**
 * Adds a user to the tenant. An unknown e-mail creates the user (global role
 * member) with no credential and returns an invitation link once, for the
 * admin to pass on: the invitee chooses the password (issue 17.7).
 */
export async function addMember(ctx: Ctx, tenantId: string, input: z.infer<typeof addMemberInput>, invite?: InvitationSettings) {
  const t = await loadTenant(ctx, tenantId, "members.write");
  try {
    // One transaction: a new user is never left behind without its membership.
    return await ctx.db.transaction(async (tx) => {
      let [user] = await tx.select().from(users).where(eq(users.email, input.email));
      let invitation: InvitationLink | null = null;
      if (!user) {
        const created = await insertUser({ ...ctx, db: tx }, { email: input.email, name: input.name ?? "", role: "member" }, t.id, invite);
        invitation = created.invitation;
        [user] = await tx.select().from(users).where(eq(users.id, created.user.id));
      }
      const u = user!;
      await tx.insert(memberships).values({ tenantId: t.id, userId: u.id, role: input.role });
      await recordEvent(tx, ctx.actor, { action: "member.add", targetType: "user", targetId: u.id, tenantId: t.id, after: { email: u.email, role: input.role } });
      return { userId: u.id, email: u.email, role: input.role, invitation };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("conflict", `${input.email} is already a member of this tenant`, [{ path: "email", message: "is already a member" }]);
    throw err;
  }
}

async function loadMembership(ctx: Ctx, tenantId: string, userId: string) {
  const t = await loadTenant(ctx, tenantId, "members.write");
  const [m] = await ctx.db
    .select()
    .from(memberships)
    .where(and(eq(memberships.tenantId, t.id), eq(memberships.userId, userId)));
  if (!m) throw notFound("Member");
  return { t, m };
}

export async function updateMember(ctx: Ctx, tenantId: string, userId: string, input: z.infer<typeof updateMemberInput>) {
  const { t, m } = await loadMembership(ctx, tenantId, userId);
  if (userId === ctx.actor.userId && ctx.actor.globalRole !== "owner") throw new AppError("bad_request", "You cannot change your own role");
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(memberships)
      .set({ role: input.role })
      .where(and(eq(memberships.tenantId, t.id), eq(memberships.userId, m.userId)));
    await recordEvent(tx, ctx.actor, { action: "member.update", targetType: "user", targetId: m.userId, tenantId: t.id, before: { role: m.role }, after: { role: input.role } });
  });
  return { userId: m.userId, role: input.role };
}

export async function removeMember(ctx: Ctx, tenantId: string, userId: string) {
  const { t, m } = await loadMembership(ctx, tenantId, userId);
  if (userId === ctx.actor.userId && ctx.actor.globalRole !== "owner") throw new AppError("bad_request", "You cannot remove yourself");
  await ctx.db.transaction(async (tx) => {
    await tx.delete(memberships).where(and(eq(memberships.tenantId, t.id), eq(memberships.userId, m.userId)));
    await recordEvent(tx, ctx.actor, { action: "member.remove", targetType: "user", targetId: m.userId, tenantId: t.id, before: { role: m.role } });
  });
}
