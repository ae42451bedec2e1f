/**
 * SSO identity linking (issue 17 items 7 and 8), against the real sandbox
 * authorization server (oidc-provider): each sign-in runs the authorization
 * code flow with PKCE, and the identity is read from the ID token and UserInfo
 * exactly as the dashboard's sign-in callback reads it.
 */
import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, users } from "@/db/schema";
import { actorForApiToken, actorForSession } from "@/lib/auth/actors";
import { readOidcIdentity, resolveOidcUser, type OidcLinkPolicy } from "@/lib/auth/oidc-link";
import { createApiToken } from "@/lib/auth/tokens";
import { verifyCredentials } from "@/lib/auth/users";
import { startAuthServer, type AuthServer, type AuthServerUser } from "@/sandbox/auth-server";
import { followToRedirect, pkcePair, registerClient, tokenRequest } from "./auth-server-helpers";
import { createTestDb, makeUser, uniq, type TestDb } from "./db";

let t: TestDb;
let as: AuthServer;
let client: { client_id: string; client_secret?: string };
const redirectUri = "http://127.0.0.1:9/callback";
const accounts: Record<string, AuthServerUser> = {};

const defaults: OidcLinkPolicy = { emailLinking: "passwordless", linkOwners: false, autoProvision: false };

/** Adds an account to the sandbox IdP (the sandbox reads its users map on every sign-in). */
function idpAccount(email: string, over: Partial<AuthServerUser> = {}): string {
  const sub = uniq("sub-");
  accounts[sub] = { tenant: "ten_demo", email, ...over };
  return sub;
}

/** Signs `sub` in at the sandbox and reads the identity as the dashboard does. */
async function ssoSignIn(sub: string) {
  const { verifier, challenge } = pkcePair();
  const q = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: redirectUri,
    response_type: "code",
    scope: "openid email",
    code_challenge: challenge,
    code_challenge_method: "S256",
    state: randomBytes(8).toString("hex"),
    nonce: randomBytes(8).toString("hex"),
    login_hint: sub,
  });
  const back = await followToRedirect(`${as.url}/auth?${q}`, redirectUri);
  const code = back.searchParams.get("code");
  expect(code, back.href).toBeTruthy();
  const tok = await tokenRequest(as, {
    grant_type: "authorization_code",
    code: code!,
    redirect_uri: redirectUri,
    client_id: client.client_id,
    client_secret: client.client_secret!,
    code_verifier: verifier,
  });
  expect(tok.status).toBe(200);
  const idClaims = decodeJwt(String(tok.body.id_token));
  expect(idClaims.sub).toBe(sub);
  return readOidcIdentity(String(idClaims.iss), sub, idClaims, String(tok.body.access_token));
}

beforeAll(async () => {
  t = await createTestDb();
  as = await startAuthServer({ resources: {}, users: accounts, defaultUser: idpAccount("nobody@sandbox.test") });
  client = await registerClient(as, { redirect_uris: [redirectUri], grant_types: ["authorization_code"], response_types: ["code"], token_endpoint_auth_method: "client_secret_post" });
});
afterAll(async () => {
  await as?.stop();
  await t?.close();
});

describe("email_verified (issue 17.8)", () => {
  it('the string "false" is not verified: an IdP account with the owner\'s e-mail does not take the owner over', async () => {
    const owner = await makeUser(t.db, { role: "owner", password: "owner-password-123" });
    for (const odd of ["false", "true", 1, "yes"]) {
      const identity = await ssoSignIn(idpAccount(owner.user.email, { emailVerified: odd }));
      expect(identity.email).toBe(owner.user.email);
      expect(identity.emailVerified).toBe(odd);
      // Whatever the linking policy, an unverified e-mail links to nobody.
      const res = await resolveOidcUser(t.db, identity, { emailLinking: "any", linkOwners: true, autoProvision: true });
      expect(res).toMatchObject({ ok: false });
    }
    const [row] = await t.db.select().from(users).where(eq(users.id, owner.user.id));
    expect(row).toMatchObject({ oidcSubject: null, oidcIssuer: null, sessionVersion: owner.user.sessionVersion });
    expect(await verifyCredentials(t.db, owner.user.email, "owner-password-123")).not.toBeNull();
  });

  it("a verified e-mail does not reach an owner unless MANDATE_OIDC_LINK_OWNERS is set", async () => {
    const owner = await makeUser(t.db, { role: "owner" });
    const identity = await ssoSignIn(idpAccount(owner.user.email));
    expect(identity.emailVerified).toBe(true);
    expect(await resolveOidcUser(t.db, identity, { ...defaults, emailLinking: "any" })).toMatchObject({ ok: false });
    const res = await resolveOidcUser(t.db, identity, { ...defaults, linkOwners: true });
    expect(res).toMatchObject({ ok: true, user: { id: owner.user.id, oidcIssuer: as.issuer } });
  });
});

describe("linking by (issuer, subject) first", () => {
  it("an identity linked once is found by issuer and subject, whatever its e-mail says now", async () => {
    const u = await makeUser(t.db);
    const sub = idpAccount(u.user.email);
    const first = await resolveOidcUser(t.db, await ssoSignIn(sub), defaults);
    expect(first).toMatchObject({ ok: true, linked: true, user: { id: u.user.id, oidcIssuer: as.issuer, oidcSubject: sub } });
    accounts[sub] = { ...accounts[sub]!, email: `${uniq("changed-")}@sandbox.test`, emailVerified: "false" };
    expect(await resolveOidcUser(t.db, await ssoSignIn(sub), defaults)).toMatchObject({ ok: true, linked: false, user: { id: u.user.id } });
  });

  it("the same subject from another issuer is another identity", async () => {
    const u = await makeUser(t.db);
    await t.db.update(users).set({ oidcIssuer: "https://other-idp.example", oidcSubject: "shared-subject" }).where(eq(users.id, u.user.id));
    const res = await resolveOidcUser(t.db, { issuer: as.issuer, subject: "shared-subject", email: `${uniq("x-")}@sandbox.test`, emailVerified: true }, defaults);
    expect(res).toMatchObject({ ok: false });
    // And an e-mail already linked to one identity is not re-linked to another.
    const sub = idpAccount(u.user.email);
    expect(await resolveOidcUser(t.db, await ssoSignIn(sub), { ...defaults, emailLinking: "any" })).toMatchObject({ ok: false });
  });

  it("with e-mail linking off, only a linked identity or a provisioned newcomer signs in", async () => {
    const u = await makeUser(t.db);
    const identity = await ssoSignIn(idpAccount(u.user.email));
    expect(await resolveOidcUser(t.db, identity, { ...defaults, emailLinking: "off" })).toMatchObject({ ok: false });
    const fresh = await ssoSignIn(idpAccount(`${uniq("new-")}@sandbox.test`));
    expect(await resolveOidcUser(t.db, fresh, { ...defaults, emailLinking: "off" })).toMatchObject({ ok: false });
    const made = await resolveOidcUser(t.db, fresh, { ...defaults, emailLinking: "off", autoProvision: true });
    expect(made).toMatchObject({ ok: true, user: { email: fresh.email, role: "member", oidcIssuer: as.issuer, oidcSubject: fresh.subject, passwordHash: null } });
  });
});

describe("local credentials of a linked account (issue 17.7)", () => {
  it("by default, a verified e-mail does not link to an account with a local password", async () => {
    // The pre-created account whose password someone else (its creator) knows.
    const u = await makeUser(t.db, { password: "one-time-password-1" });
    const res = await resolveOidcUser(t.db, await ssoSignIn(idpAccount(u.user.email)), defaults);
    expect(res).toMatchObject({ ok: false });
    const [row] = await t.db.select().from(users).where(eq(users.id, u.user.id));
    expect(row!.oidcSubject).toBeNull();
  });

  it("when linking to such an account is allowed, the link removes its password, API tokens and sessions", async () => {
    const { user: tenantOwner } = await makeUser(t.db, { role: "owner" });
    const u = await makeUser(t.db, { role: "auditor", password: "one-time-password-1" });
    const token = await createApiToken(u.ctx, { name: "minted with the one-time password", role: "auditor" });
    expect(await actorForApiToken(t.db, token.token)).not.toBeNull();
    expect(await actorForSession(t.db, u.user.id, u.user.sessionVersion)).not.toBeNull();

    const res = await resolveOidcUser(t.db, await ssoSignIn(idpAccount(u.user.email)), { ...defaults, emailLinking: "any" });
    expect(res).toMatchObject({ ok: true, linked: true, user: { id: u.user.id, passwordHash: null } });
    expect(await verifyCredentials(t.db, u.user.email, "one-time-password-1")).toBeNull();
    expect(await actorForApiToken(t.db, token.token)).toBeNull();
    expect(await actorForSession(t.db, u.user.id, u.user.sessionVersion)).toBeNull();
    const [ev] = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "user.sso_link"), eq(auditEvents.targetId, u.user.id)));
    expect(ev).toMatchObject({ targetId: u.user.id, after: { passwordRemoved: true, tokensRevoked: 1 } });
    expect(tenantOwner.id).not.toBe(u.user.id);
  });

  it("a user with no local password links by verified e-mail under the default policy", async () => {
    const u = await makeUser(t.db);
    const res = await resolveOidcUser(t.db, await ssoSignIn(idpAccount(u.user.email.toUpperCase())), defaults);
    expect(res).toMatchObject({ ok: true, linked: true, user: { id: u.user.id, oidcIssuer: as.issuer } });
  });

  it("a disabled user is refused, linked or not", async () => {
    const u = await makeUser(t.db, { disabled: true });
    const sub = idpAccount(u.user.email);
    expect(await resolveOidcUser(t.db, await ssoSignIn(sub), defaults)).toMatchObject({ ok: false });
    await t.db.update(users).set({ oidcIssuer: as.issuer, oidcSubject: sub }).where(eq(users.id, u.user.id));
    expect(await resolveOidcUser(t.db, await ssoSignIn(sub), defaults)).toMatchObject({ ok: false });
  });
});
