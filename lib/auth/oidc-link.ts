import { and, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { apiTokens, invitations, users, type User } from "@/db/schema";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { emailSchema } from "./users";

/** What an SSO sign-in proves: the identity (issuer, subject) and what the IdP says about its e-mail. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email?: unknown;
  /** Trusted only when it is the boolean `true` (a string "false" is truthy). */
  emailVerified?: unknown;
  name?: unknown;
}

/** How SSO sign-ins may reach existing users (MANDATE_OIDC_EMAIL_LINKING, MANDATE_OIDC_LINK_OWNERS, MANDATE_OIDC_AUTO_PROVISION). */
export interface OidcLinkPolicy {
  /** off: by (issuer, subject) only; passwordless: also by verified e-mail to a user without a local password; any: also to one with a password (removed on link). */
  emailLinking: "off" | "passwordless" | "any";
  /** Owners are linked by e-mail only when this is set. */
  linkOwners: boolean;
  /** Create an unknown verified e-mail as a member without access. */
  autoProvision: boolean;
}

export type OidcLinkResult = { ok: true; user: User; linked: boolean } | { ok: false; reason: string };

const MAX_ISSUER = 2048;
const MAX_SUBJECT = 255;

const deny = (reason: string): OidcLinkResult => ({ ok: false, reason });

/** The e-mail of an identity, only when the IdP asserts it verified with the boolean `true`. */
export function verifiedEmail(identity: Pick<OidcIdentity, "email" | "emailVerified">): string | null {
  if (identity.emailVerified !== true || typeof identity.email !== "string") return null;
  const parsed = emailSchema.safeParse(identity.email);
  return parsed.success ? parsed.data : null;
}

interface ClaimSet {
  sub?: unknown;
  email?: unknown;
  email_verified?: unknown;
  name?: unknown;
}

/**
 * Reads the identity of an OIDC sign-in from the validated ID token's claims.
 * Providers that issue an access token with the ID token may release scope
 * claims only at the UserInfo endpoint (OpenID Connect Core §5.4;
 * oidc-provider does by default), so when the ID token has no e-mail they are
 * read there, and used only if UserInfo names the same subject (§5.3.2).
 */
export async function readOidcIdentity(issuer: string, subject: string, idToken: ClaimSet | undefined, accessToken: string | undefined, fetchImpl: typeof fetch = fetch): Promise<OidcIdentity> {
  const base = { issuer, subject };
  const from = (c: ClaimSet | undefined): OidcIdentity => ({ ...base, email: c?.email, emailVerified: c?.email_verified, name: c?.name });
  if (idToken?.email !== undefined || !accessToken) return from(idToken);
  try {
    const metaRes = await fetchImpl(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000), redirect: "error" });
    const meta = (await boundedJson(metaRes)) as { userinfo_endpoint?: unknown } | null;
    if (typeof meta?.userinfo_endpoint !== "string") return from(idToken);
    const res = await fetchImpl(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(5000), redirect: "error" });
    const info = res.ok ? ((await boundedJson(res)) as ClaimSet | null) : null;
    return info && info.sub === subject ? { ...from(info), name: info.name ?? idToken?.name } : from(idToken);
  } catch {
    return from(idToken);
  }
}

// Discovery and UserInfo answers are small; a larger one is refused, not read.
async function boundedJson(res: Response, max = 64 * 1024): Promise<unknown> {
  const text = await res.text();
  if (text.length > max) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/**
 * Finds the Mandate user of an SSO identity. The identity (issuer, subject)
 * is looked up first. Otherwise an e-mail the IdP asserts verified (boolean
 * `true` only) may link to a user no SSO identity has claimed yet, within the
 * policy: never to an owner unless allowed, never (by default) to a user who
 * has a local password. Linking removes the user's local credentials (password,
 * pending invitations, API tokens) and ends its sessions, so whoever held a
 * password or an invitation for the row keeps nothing.
 */
export async function resolveOidcUser(db: Db, identity: OidcIdentity, policy: OidcLinkPolicy): Promise<OidcLinkResult> {
  const { issuer, subject } = identity;
  if (!issuer || !subject || issuer.length > MAX_ISSUER || subject.length > MAX_SUBJECT) return deny("invalid identity");

  const [known] = await db
    .select()
    .from(users)
    .where(and(eq(users.oidcIssuer, issuer), eq(users.oidcSubject, subject)));
  if (known) return known.disabled ? deny("user disabled") : { ok: true, user: known, linked: false };

  const email = verifiedEmail(identity);
  if (!email) return deny("no verified e-mail");
  if (policy.emailLinking === "off") {
    const [existing] = await db.select({ id: users.id }).from(users).where(eq(users.email, email));
    if (existing) return deny("e-mail linking is off");
    return provision(db, identity, email, policy);
  }

  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(users).where(eq(users.email, email)).for("update");
    if (!row) return provision(tx, identity, email, policy);
    if (row.oidcSubject !== null) return deny("the user is linked to another SSO identity");
    if (row.disabled) return deny("user disabled");
    if (row.role === "owner" && !policy.linkOwners) return deny("owners are not linked by e-mail");
    if (row.passwordHash && policy.emailLinking !== "any") return deny("the user has a local password");

    const [linked] = await tx
      .update(users)
      .set({ oidcIssuer: issuer, oidcSubject: subject, passwordHash: null, mustChangePassword: false, sessionVersion: row.sessionVersion + 1 })
      .where(and(eq(users.id, row.id), isNull(users.oidcSubject)))
      .returning();
    if (!linked) return deny("the user was linked concurrently");
    const now = new Date();
    const tokens = await tx
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(eq(apiTokens.createdBy, row.id), isNull(apiTokens.revokedAt)))
      .returning({ id: apiTokens.id });
    await tx
      .update(invitations)
      .set({ revokedAt: now })
      .where(and(eq(invitations.userId, row.id), isNull(invitations.usedAt), isNull(invitations.revokedAt)));
    await recordEvent(tx, "system", {
      action: "user.sso_link",
      targetType: "user",
      targetId: row.id,
      tenantId: null,
      after: { issuer, by: "verified_email", passwordRemoved: row.passwordHash !== null, tokensRevoked: tokens.length },
    });
    return { ok: true, user: linked, linked: true };
  });
}

async function provision(db: Db, identity: OidcIdentity, email: string, policy: OidcLinkPolicy): Promise<OidcLinkResult> {
  if (!policy.autoProvision) return deny("no such user");
  const id = newId("user");
  const name = typeof identity.name === "string" ? identity.name.slice(0, 120) : "";
  const [row] = await db.insert(users).values({ id, email, name, role: "member", oidcIssuer: identity.issuer, oidcSubject: identity.subject }).onConflictDoNothing().returning();
  if (!row) return deny("the user was created concurrently");
  await recordEvent(db, "system", { action: "user.provision", targetType: "user", targetId: id, tenantId: null, after: { email, issuer: identity.issuer } });
  return { ok: true, user: row, linked: true };
}

/** Records a successful SSO sign-in. */
export async function touchSsoLogin(db: Db, userId: string): Promise<void> {
  await db
    .update(users)
    .set({ lastLoginAt: sql`now()` })
    .where(eq(users.id, userId));
}
