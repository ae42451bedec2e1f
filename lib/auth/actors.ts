import { and, eq } from "drizzle-orm";
import type { Db } from "@/db/client";
import { apiTokens, memberships, tenants, users, type TokenRole, type User } from "@/db/schema";
import { roleIn, type Actor } from "./permissions";
import { secretMatches } from "./secrets";

const rank: Record<TokenRole, number> = { auditor: 1, admin: 2, owner: 3 };

/**
 * Builds the actor for a user from its current row and memberships. A user
 * who must still change a one-time password gets an actor with no role at
 * all: it can change its password and nothing else.
 */
export async function actorForUser(db: Db, user: User): Promise<Actor> {
  if (user.mustChangePassword) {
    return { type: "user", id: user.id, label: user.email, userId: user.id, globalRole: "member", tenantRoles: new Map(), mustChangePassword: true };
  }
  // Memberships of a disabled tenant grant nothing: disabling suspends its admins and their tokens.
  const rows = await db
    .select({ tenantId: memberships.tenantId, role: memberships.role })
    .from(memberships)
    .innerJoin(tenants, eq(tenants.id, memberships.tenantId))
    .where(and(eq(memberships.userId, user.id), eq(tenants.status, "active")));
  return {
    type: "user",
    id: user.id,
    label: user.email,
    userId: user.id,
    globalRole: user.role,
    tenantRoles: new Map(rows.map((r) => [r.tenantId, r.role])),
  };
}

/** The actor of a session, or null when the user is gone, disabled or the session outdated. */
export async function actorForSession(db: Db, userId: string, sessionVersion: number): Promise<Actor | null> {
  const [user] = await db.select().from(users).where(eq(users.id, userId));
  if (!user || user.disabled || user.sessionVersion !== sessionVersion) return null;
  return actorForUser(db, user);
}

export const TOKEN_PREFIX = "mdt_";

export { hashSecret } from "./secrets";

/** Splits `mdt_<id hex>.<secret>` into the token id and its secret. */
export function parseApiToken(raw: string): { id: string; secret: string } | null {
  const m = /^mdt_([0-9a-f]{32})\.([A-Za-z0-9_-]{32,64})$/.exec(raw);
  return m ? { id: `tok_${m[1]}`, secret: m[2]! } : null;
}

/**
 * The actor of an API token, or null. A token never holds more than its
 * creator holds now: a disabled or demoted creator takes the token down too.
 */
export async function actorForApiToken(db: Db, raw: string, now = new Date()): Promise<Actor | null> {
  const parsed = parseApiToken(raw);
  if (!parsed) return null;
  const [tok] = await db.select().from(apiTokens).where(eq(apiTokens.id, parsed.id));
  if (!secretMatches(parsed.secret, tok?.secretHash) || !tok) return null;
  if (tok.revokedAt || (tok.expiresAt && tok.expiresAt <= now)) return null;

  const [creator] = await db.select().from(users).where(eq(users.id, tok.createdBy));
  // A creator still on a one-time password holds nothing, so neither do its tokens.
  if (!creator || creator.disabled || creator.mustChangePassword) return null;
  const creatorActor = await actorForUser(db, creator);
  const held = tok.tenantId ? roleIn(creatorActor, tok.tenantId) : creatorActor.globalRole === "owner" ? "owner" : creatorActor.globalRole === "auditor" ? "auditor" : undefined;
  if (!held || rank[held] < rank[tok.role]) return null;

  await db
    .update(apiTokens)
    .set({ lastUsedAt: now })
    .where(and(eq(apiTokens.id, tok.id)));
  return {
    type: "token",
    id: tok.id,
    label: `token:${tok.name}`,
    userId: tok.createdBy,
    globalRole: tok.tenantId ? "member" : tok.role === "owner" ? "owner" : "auditor",
    tenantRoles: new Map(tok.tenantId ? [[tok.tenantId, tok.role === "auditor" ? "auditor" : "admin"]] : []),
  };
}
