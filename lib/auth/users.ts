import { and, asc, count, eq, ilike, isNull, or, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { apiTokens, globalRoles, users, type User } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { likePattern, offsetOf, type Page, type PageQuery } from "@/lib/pagination";
import { recordEvent } from "@/lib/trail/record";
import { defaultInvitationSettings, issueInvitation, type InvitationSettings } from "./invitations";
import { dummyHash, generatePassword, hashPassword, newPasswordSchema, verifyPassword } from "./password";
import { canGlobally } from "./permissions";

export { newPasswordSchema };

export const emailSchema = z
  .email("must be an e-mail address")
  .max(254)
  .transform((e) => e.trim().toLowerCase());

/** The public view of a user: never the password hash. */
export function publicUser(u: User) {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    disabled: u.disabled,
    mustChangePassword: u.mustChangePassword,
    /** Whether the user has set a password (through an invitation) and whether an SSO identity is linked; neither means the invitation is pending. */
    hasPassword: u.passwordHash !== null,
    ssoLinked: u.oidcSubject !== null,
    createdAt: u.createdAt.toISOString(),
    lastLoginAt: u.lastLoginAt?.toISOString() ?? null,
  };
}
export type PublicUser = ReturnType<typeof publicUser>;

/**
 * Creates the first owner when the database has no user. Its password comes
 * from the environment, or is generated and handed to `announce` once.
 */
export async function bootstrapOwner(db: Db, opts: { email?: string; password?: string; announce: (email: string, password: string) => void }): Promise<void> {
  const [{ n }] = (await db.select({ n: count() }).from(users)) as [{ n: number }];
  if (n > 0) return;
  const email = emailSchema.parse(opts.email ?? "owner@mandate.local");
  const oneTime = !opts.password;
  const password = opts.password ?? generatePassword();
  const id = newId("user");
  await db.transaction(async (tx) => {
    await tx.insert(users).values({
      id,
      email,
      name: "Owner",
      role: "owner",
      passwordHash: await hashPassword(password),
      mustChangePassword: oneTime,
    });
    await recordEvent(tx, "system", { action: "user.bootstrap", targetType: "user", targetId: id, tenantId: null, after: { email, role: "owner" } });
  });
  if (oneTime) opts.announce(email, password);
}

/** Checks an e-mail and password; the same work is done whether or not the user exists. */
export async function verifyCredentials(db: Db, email: string, password: string): Promise<User | null> {
  const parsed = emailSchema.safeParse(email);
  const [user] = parsed.success ? await db.select().from(users).where(eq(users.email, parsed.data)) : [];
  const ok = await verifyPassword(user?.passwordHash ?? (await dummyHash()), password);
  if (!user || !user.passwordHash || !ok || user.disabled) return null;
  await db.update(users).set({ lastLoginAt: new Date() }).where(eq(users.id, user.id));
  return user;
}

export const createUserInput = z
  .object({
    email: emailSchema,
    name: z.string().trim().max(120).default(""),
    role: z.enum(globalRoles).default("member").describe("owner, auditor (reads every tenant) or member"),
  })
  // No password field: whoever adds a user never knows its credential (issue 17.7); the invitee chooses it.
  .strict();

/** Creates a user (owners only) with no credential, and an invitation link for the inviter to pass on (returned once). */
export async function createUser(ctx: Ctx, input: z.infer<typeof createUserInput>, invite: InvitationSettings = defaultInvitationSettings) {
  if (!canGlobally(ctx.actor, "users.manage")) throw forbidden("Only owners can create users");
  return insertUser(ctx, input, null, invite);
}

/**
 * Inserts a user without any credential, its invitation and their trail
 * entries; callers have authorized the creation. The invitee sets a password
 * through the link, or signs in with SSO (which may link to a user with no
 * password, and closes the invitation).
 */
export async function insertUser(ctx: Ctx, input: z.infer<typeof createUserInput>, tenantId: string | null = null, invite: InvitationSettings = defaultInvitationSettings) {
  const id = newId("user");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx.insert(users).values({ id, email: input.email, name: input.name, role: input.role, passwordHash: null, mustChangePassword: false }).returning();
      await recordEvent(tx, ctx.actor, { action: "user.create", targetType: "user", targetId: id, tenantId, after: { email: input.email, role: input.role } });
      const invitation = await issueInvitation(tx, ctx.actor, id, { ...invite, tenantId });
      return { user: publicUser(row!), invitation };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("conflict", "A user with this e-mail already exists", [{ path: "email", message: "already exists" }]);
    throw err;
  }
}

export async function listUsers(ctx: Ctx, q: PageQuery): Promise<Page<PublicUser>> {
  if (!canGlobally(ctx.actor, "tenants.read")) throw forbidden("Only owners and auditors list every user");
  const where = q.q ? or(ilike(users.email, likePattern(q.q)), ilike(users.name, likePattern(q.q))) : undefined;
  const [rows, [total]] = await Promise.all([
    ctx.db.select().from(users).where(where).orderBy(asc(users.email)).limit(q.pageSize).offset(offsetOf(q)),
    ctx.db.select({ n: count() }).from(users).where(where),
  ]);
  return { items: rows.map(publicUser), total: total?.n ?? 0, page: q.page, pageSize: q.pageSize };
}

export const updateUserInput = z
  .object({
    name: z.string().trim().max(120).optional(),
    role: z.enum(globalRoles).optional(),
    disabled: z.boolean().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, "nothing to change");

export async function updateUser(ctx: Ctx, userId: string, input: z.infer<typeof updateUserInput>) {
  if (!canGlobally(ctx.actor, "users.manage")) throw forbidden("Only owners can change users");
  const mayRemoveOwner = input.disabled === true || (input.role !== undefined && input.role !== "owner");
  return ctx.db.transaction(async (tx) => {
    // Lock every active owner, in one order, before counting them: otherwise two owners
    // demoting each other at once each still see the other and both succeed, leaving none.
    if (mayRemoveOwner) {
      await tx
        .select({ id: users.id })
        .from(users)
        .where(sql`${users.role} = 'owner' and not ${users.disabled}`)
        .orderBy(asc(users.id))
        .for("update");
    }
    const [before] = await tx.select().from(users).where(eq(users.id, userId)).for("update");
    if (!before) throw notFound("User");
    if (before.id === ctx.actor.userId && (input.disabled || (input.role && input.role !== "owner"))) {
      throw new AppError("bad_request", "You cannot disable or demote yourself");
    }
    if (before.role === "owner" && (input.disabled || (input.role && input.role !== "owner"))) {
      const [{ n }] = (await tx
        .select({ n: count() })
        .from(users)
        .where(sql`${users.role} = 'owner' and not ${users.disabled}`)) as [{ n: number }];
      if (n <= 1) throw new AppError("conflict", "The last active owner cannot be disabled or demoted");
    }
    const revokeSessions = input.disabled === true || (input.role !== undefined && input.role !== before.role);
    const [after] = await tx
      .update(users)
      .set({ ...input, ...(revokeSessions ? { sessionVersion: before.sessionVersion + 1 } : {}) })
      .where(eq(users.id, userId))
      .returning();
    await recordEvent(tx, ctx.actor, {
      action: "user.update",
      targetType: "user",
      targetId: userId,
      tenantId: null,
      before: { name: before.name, role: before.role, disabled: before.disabled },
      after: { name: after!.name, role: after!.role, disabled: after!.disabled },
    });
    return publicUser(after!);
  });
}

export const changePasswordInput = z.object({
  currentPassword: z.string().min(1, "is required").max(256),
  newPassword: newPasswordSchema,
});

/** Changes the acting user's own password and ends its other sessions. */
export async function changeOwnPassword(ctx: Ctx, input: z.infer<typeof changePasswordInput>) {
  if (ctx.actor.type !== "user") throw forbidden("API tokens cannot change passwords");
  const [user] = await ctx.db.select().from(users).where(eq(users.id, ctx.actor.userId));
  if (!user?.passwordHash || !(await verifyPassword(user.passwordHash, input.currentPassword))) {
    throw new AppError("validation_failed", "The current password is wrong", [{ path: "currentPassword", message: "is wrong" }]);
  }
  if (input.currentPassword === input.newPassword) {
    throw new AppError("validation_failed", "Choose a new password", [{ path: "newPassword", message: "must differ from the current one" }]);
  }
  const sessionVersion = user.sessionVersion + 1;
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(users)
      .set({ passwordHash: await hashPassword(input.newPassword), mustChangePassword: false, sessionVersion })
      .where(eq(users.id, user.id));
    // Tokens minted while a one-time password was in force (before it had to be changed first) die with it.
    const revoked = user.mustChangePassword
      ? await tx
          .update(apiTokens)
          .set({ revokedAt: new Date() })
          .where(and(eq(apiTokens.createdBy, user.id), isNull(apiTokens.revokedAt)))
          .returning({ id: apiTokens.id })
      : [];
    await recordEvent(tx, ctx.actor, { action: "user.password_change", targetType: "user", targetId: user.id, tenantId: null, after: revoked.length ? { tokensRevoked: revoked.length } : undefined });
  });
  return { sessionVersion };
}
