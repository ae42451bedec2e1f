import { randomBytes } from "node:crypto";
import { and, eq, gt, isNull } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { invitations, users } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { hashPassword, newPasswordSchema } from "./password";
import { canGlobally, type Actor } from "./permissions";
import { secretMatches, hashSecret } from "./secrets";

export const INVITATION_PREFIX = "mdi_";

/** Where invitation links point and how long they live (NEXTAUTH_URL, MANDATE_INVITATION_TTL_HOURS). */
export interface InvitationSettings {
  /** Public origin of the dashboard; empty gives a relative link. */
  baseUrl: string;
  ttlHours: number;
}

export const defaultInvitationSettings: InvitationSettings = { baseUrl: "", ttlHours: 72 };

export const invitationSettingsFrom = (env: { NEXTAUTH_URL: string; MANDATE_INVITATION_TTL_HOURS: number }): InvitationSettings => ({
  baseUrl: env.NEXTAUTH_URL,
  ttlHours: env.MANDATE_INVITATION_TTL_HOURS,
});

/** What the inviter receives once and passes on: the link holds the secret, in the fragment (never sent to a server log or a Referer). */
export interface InvitationLink {
  url: string;
  expiresAt: string;
}

/** Splits `mdi_<id hex>.<secret>` into the invitation id and its secret. */
export function parseInvitationToken(raw: string): { id: string; secret: string } | null {
  const m = /^mdi_([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$/.exec(raw);
  return m ? { id: `inv_${m[1]}`, secret: m[2]! } : null;
}

/**
 * Issues an invitation for a user who has no credential yet, closing any
 * earlier one. Callers have authorized it; `db` may be their transaction.
 */
export async function issueInvitation(db: Db, actor: Actor, userId: string, opts: InvitationSettings & { tenantId?: string | null }): Promise<InvitationLink> {
  const id = newId("invitation");
  const secret = randomBytes(32).toString("base64url");
  const expiresAt = new Date(Date.now() + opts.ttlHours * 3_600_000);
  await db
    .update(invitations)
    .set({ revokedAt: new Date() })
    .where(and(eq(invitations.userId, userId), isNull(invitations.usedAt), isNull(invitations.revokedAt)));
  await db.insert(invitations).values({ id, userId, secretHash: hashSecret(secret), createdBy: actor.userId, expiresAt });
  await recordEvent(db, actor, { action: "user.invite", targetType: "user", targetId: userId, tenantId: opts.tenantId ?? null, after: { invitation: id, expiresAt: expiresAt.toISOString() } });
  return { url: `${opts.baseUrl.replace(/\/$/, "")}/invite#${INVITATION_PREFIX}${id.slice(4)}.${secret}`, expiresAt: expiresAt.toISOString() };
}

/** A user can be (re-)invited only while no credential of theirs exists: no password, no SSO identity. */
export async function reissueInvitation(ctx: Ctx, userId: string, opts: InvitationSettings = defaultInvitationSettings): Promise<InvitationLink> {
  if (!canGlobally(ctx.actor, "users.manage")) throw forbidden("Only owners can invite users again");
  return ctx.db.transaction(async (tx) => {
    const [u] = await tx.select().from(users).where(eq(users.id, userId)).for("update");
    if (!u) throw notFound("User");
    if (u.disabled) throw new AppError("conflict", "The user is disabled");
    if (u.passwordHash || u.oidcSubject) throw new AppError("conflict", "The user has already set up sign-in; only the user can change their credentials");
    return issueInvitation(tx, ctx.actor, u.id, opts);
  });
}

export const acceptInvitationInput = z.object({
  token: z.string().max(200).describe("The `mdi_…` token from the invitation link's fragment"),
  password: newPasswordSchema.describe("The password the invitee chooses"),
});

/**
 * Completes an invitation: the invitee sets their own password. Single use,
 * within its lifetime, only for a user that still has no credential (an SSO
 * link or an earlier acceptance closes it). Every failure looks the same.
 */
export async function acceptInvitation(db: Db, input: z.infer<typeof acceptInvitationInput>): Promise<{ email: string }> {
  const invalid = () => new AppError("bad_request", "This invitation link is invalid, used or expired. Ask for a new one.");
  const parsed = parseInvitationToken(input.token);
  const [inv] = parsed ? await db.select().from(invitations).where(eq(invitations.id, parsed.id)) : [];
  if (!secretMatches(parsed?.secret ?? "", inv?.secretHash) || !inv) throw invalid();
  const passwordHash = await hashPassword(input.password);
  return db.transaction(async (tx) => {
    const [used] = await tx
      .update(invitations)
      .set({ usedAt: new Date() })
      .where(and(eq(invitations.id, inv.id), isNull(invitations.usedAt), isNull(invitations.revokedAt), gt(invitations.expiresAt, new Date())))
      .returning();
    if (!used) throw invalid();
    const [u] = await tx.select().from(users).where(eq(users.id, used.userId)).for("update");
    if (!u || u.disabled || u.passwordHash || u.oidcSubject) throw invalid();
    await tx
      .update(users)
      .set({ passwordHash, mustChangePassword: false, sessionVersion: u.sessionVersion + 1 })
      .where(eq(users.id, u.id));
    await recordEvent(tx, "system", { action: "user.invitation_accept", targetType: "user", targetId: u.id, tenantId: null, after: { invitation: inv.id } });
    return { email: u.email };
  });
}
