/**
 * Issue 17.7: whoever adds a user never learns a credential of theirs
 * (invitation links), and a user still holding a one-time password can do
 * nothing but change it, over the session and the API alike.
 */
import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { encode } from "next-auth/jwt";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as meRoute from "@/app/api/v1/admin/me/route";
import * as passwordRoute from "@/app/api/v1/admin/me/password/route";
import * as usersRoute from "@/app/api/v1/admin/users/route";
import * as tokensRoute from "@/app/api/v1/admin/tokens/route";
import * as acceptRoute from "@/app/api/auth/invitation/route";
import * as reinviteRoute from "@/app/api/v1/admin/users/[userId]/invitation/route";
import { apiTokens, auditEvents, invitations, users } from "@/db/schema";
import { actorForApiToken, actorForSession, hashSecret } from "@/lib/auth/actors";
import { acceptInvitation, reissueInvitation } from "@/lib/auth/invitations";
import { resolveOidcUser } from "@/lib/auth/oidc-link";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { createUser, createUserInput, verifyCredentials } from "@/lib/auth/users";
import { newId } from "@/lib/ids";
import { addMember } from "@/lib/tenants/service";
import { actorOf, createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");

let t: TestDb;
let owner: MadeUser;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const base = "http://localhost:3000";
const noParams = { params: Promise.resolve({}) };

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner", password: "owner-password-123" });
});
afterAll(async () => {
  delete g.__mandateDb;
  await t?.close();
});

/** A request carrying the dashboard's session cookie for this user, as next-auth would set it. */
async function sessionRequest(method: string, path: string, user: { id: string; sessionVersion: number }, body?: unknown) {
  const jwt = await encode({ token: { sub: user.id, sv: user.sessionVersion }, secret: process.env.NEXTAUTH_SECRET! });
  return new NextRequest(`${base}${path}`, {
    method,
    headers: { cookie: `next-auth.session-token=${jwt}`, origin: base, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}
const bearer = (method: string, path: string, token: string) => new NextRequest(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
const tokenOf = (url: string) => decodeURIComponent(new URL(url, base).hash.slice(1));

describe("a user who must change a one-time password can do nothing else", () => {
  // A user holding a password someone else knew (the first owner's printed one, or one handed out before invitations).
  async function oneTimeUser() {
    const u = await makeUser(t.db, { role: "owner", password: "one-time-password-1" });
    const [row] = await t.db.update(users).set({ mustChangePassword: true }).where(eq(users.id, u.user.id)).returning();
    const actor = await actorOf(t.db, u.user.id);
    return { user: row!, actor, ctx: { db: t.db, actor } };
  }

  it("its session reaches only who-am-I and the password change", async () => {
    const u = await oneTimeUser();
    const users403 = await usersRoute.GET(await sessionRequest("GET", "/api/v1/admin/users", u.user), noParams);
    expect(users403.status).toBe(403);
    const mint = await tokensRoute.POST(await sessionRequest("POST", "/api/v1/admin/tokens", u.user, { name: "sneaky", role: "owner" }), noParams);
    expect(mint.status).toBe(403);
    expect(await t.db.select().from(apiTokens).where(eq(apiTokens.createdBy, u.user.id))).toEqual([]);
    const me = await meRoute.GET(await sessionRequest("GET", "/api/v1/admin/me", u.user), noParams);
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { mustChangePassword: boolean } }).user.mustChangePassword).toBe(true);

    const changed = await passwordRoute.POST(
      await sessionRequest("POST", "/api/v1/admin/me/password", u.user, { currentPassword: "one-time-password-1", newPassword: "my-own-password-22" }),
      noParams,
    );
    expect(changed.status).toBe(204);
    const [after] = await t.db.select().from(users).where(eq(users.id, u.user.id));
    expect(after!.mustChangePassword).toBe(false);
    expect((await usersRoute.GET(await sessionRequest("GET", "/api/v1/admin/users", after!), noParams)).status).toBe(200);
  });

  it("no API token works for it, nor after the change for tokens made before it", async () => {
    const u = await oneTimeUser();
    expect(u.actor).toMatchObject({ mustChangePassword: true, globalRole: "member", tenantRoles: new Map() });
    await expectAppError(createApiToken(u.ctx, createTokenInput.parse({ name: uniq("t-"), role: "owner" })), "forbidden");
    // A token minted with the one-time password before this fix.
    const secret = randomBytes(32).toString("base64url");
    const id = newId("token");
    await t.db.insert(apiTokens).values({ id, name: "old", secretHash: hashSecret(secret), lastFour: secret.slice(-4), role: "owner", createdBy: u.user.id });
    const raw = `mdt_${id.slice(4)}.${secret}`;
    expect(await actorForApiToken(t.db, raw)).toBeNull();
    expect((await usersRoute.GET(bearer("GET", "/api/v1/admin/users", raw), noParams)).status).toBe(401);

    const changed = await passwordRoute.POST(
      await sessionRequest("POST", "/api/v1/admin/me/password", u.user, { currentPassword: "one-time-password-1", newPassword: "my-own-password-22" }),
      noParams,
    );
    expect(changed.status).toBe(204);
    expect(await actorForApiToken(t.db, raw)).toBeNull();
    const [tok] = await t.db.select().from(apiTokens).where(eq(apiTokens.id, id));
    expect(tok!.revokedAt).not.toBeNull();
  });
});

describe("invitations instead of one-time passwords", () => {
  it("an owner adding a user gets a link, never a password; the invitee chooses theirs once", async () => {
    const email = `${uniq("new-")}@test.example`;
    const res = await usersRoute.POST(await sessionRequest("POST", "/api/v1/admin/users", owner.user, { email, role: "auditor" }), noParams);
    const text = await res.text();
    expect(res.status, text).toBe(201);
    const made = JSON.parse(text) as { user: { id: string; hasPassword: boolean }; invitation: { url: string; expiresAt: string } };
    expect(made.user.hasPassword).toBe(false);
    expect(text).not.toMatch(/password"\s*:\s*"/i);
    expect(made.invitation.url).toMatch(/^http:\/\/localhost:3000\/invite#mdi_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    const token = tokenOf(made.invitation.url);
    const [row] = await t.db.select().from(users).where(eq(users.id, made.user.id));
    expect(row).toMatchObject({ passwordHash: null, mustChangePassword: false });
    const [inv] = await t.db.select().from(invitations).where(eq(invitations.userId, made.user.id));
    expect(inv!.secretHash).toBe(hashSecret(token.split(".")[1]!));
    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, made.user.id));
    expect(trail.map((e) => e.action).sort()).toEqual(["user.create", "user.invite"]);
    expect(JSON.stringify(trail)).not.toContain(token.split(".")[1]!);
    // The old request shape is refused rather than silently ignored.
    expect(createUserInput.safeParse({ email, password: "chosen-by-the-owner" }).success).toBe(false);

    const bad = await acceptRoute.POST(
      new NextRequest(`${base}/api/auth/invitation`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token: `${token.slice(0, -2)}xx`, password: "invitee-password-1" }),
      }),
    );
    expect(bad.status).toBe(400);
    const ok = await acceptRoute.POST(
      new NextRequest(`${base}/api/auth/invitation`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token, password: "invitee-password-1" }) }),
    );
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ email });
    expect(await verifyCredentials(t.db, email, "invitee-password-1")).not.toBeNull();
    // Single use: the link cannot set the password again (whoever kept a copy).
    await expectAppError(acceptInvitation(t.db, { token, password: "attacker-password-1" }), "bad_request");
    expect(await verifyCredentials(t.db, email, "attacker-password-1")).toBeNull();
  });

  it("a tenant admin adding a colleague keeps nothing once the colleague signs in with SSO", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const admin = await makeUser(t.db, { memberships: [[tenant.id, "admin"]] });
    const email = `${uniq("colleague-")}@test.example`;
    const added = await addMember(admin.ctx, tenant.id, { email, role: "admin" });
    expect(added).not.toHaveProperty("oneTimePassword");
    expect(added.invitation?.url).toMatch(/\/invite#mdi_/);
    const res = await resolveOidcUser(
      t.db,
      { issuer: "https://idp.example", subject: uniq("s-"), email, emailVerified: true },
      { emailLinking: "passwordless", linkOwners: false, autoProvision: false },
    );
    expect(res).toMatchObject({ ok: true, user: { id: added.userId } });
    // The link the admin still holds is dead.
    await expectAppError(acceptInvitation(t.db, { token: tokenOf(added.invitation!.url), password: "admin-chosen-pass-1" }), "bad_request");
    const [row] = await t.db.select().from(users).where(eq(users.id, added.userId));
    expect(row!.passwordHash).toBeNull();
  });

  it("links expire, a new link closes the old one, and only users without any credential are invited again", async () => {
    const made = await createUser(owner.ctx, createUserInput.parse({ email: `${uniq("r-")}@test.example` }));
    const second = await reissueInvitation(owner.ctx, made.user.id);
    await expectAppError(acceptInvitation(t.db, { token: tokenOf(made.invitation.url), password: "invitee-password-1" }), "bad_request");
    await t.db
      .update(invitations)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(and(eq(invitations.userId, made.user.id)));
    await expectAppError(acceptInvitation(t.db, { token: tokenOf(second.url), password: "invitee-password-1" }), "bad_request");

    const third = await reinviteRoute.POST(await sessionRequest("POST", `/api/v1/admin/users/${made.user.id}/invitation`, owner.user), { params: Promise.resolve({ userId: made.user.id }) });
    expect(third.status).toBe(201);
    await acceptInvitation(t.db, { token: tokenOf(((await third.json()) as { url: string }).url), password: "invitee-password-1" });
    // It has a password now: nobody can be handed a way to replace it.
    await expectAppError(reissueInvitation(owner.ctx, made.user.id), "conflict");
    const member = await makeUser(t.db);
    await expectAppError(reissueInvitation(member.ctx, made.user.id), "forbidden");
    // A disabled user's link does not work.
    const other = await createUser(owner.ctx, createUserInput.parse({ email: `${uniq("d-")}@test.example` }));
    await t.db.update(users).set({ disabled: true }).where(eq(users.id, other.user.id));
    await expectAppError(acceptInvitation(t.db, { token: tokenOf(other.invitation.url), password: "invitee-password-1" }), "bad_request");
    expect(await actorForSession(t.db, other.user.id, 1)).toBeNull();
  });
});
