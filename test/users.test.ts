import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, count, eq, sql } from "drizzle-orm";
import { auditEvents, users } from "@/db/schema";
import { actorForSession } from "@/lib/auth/actors";
import { hashPassword, verifyPassword } from "@/lib/auth/password";
import { bootstrapOwner, changeOwnPassword, createUser, createUserInput, listUsers, updateUser, verifyCredentials } from "@/lib/auth/users";
import { actorOf, createTestDb, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;

beforeAll(async () => {
  t = await createTestDb();
});
afterAll(async () => {
  await t?.close();
});

const activeOwners = async () =>
  (
    await t.db
      .select({ n: count() })
      .from(users)
      .where(sql`${users.role} = 'owner' and not ${users.disabled}`)
  )[0]!.n;

describe("bootstrapOwner", () => {
  // Runs first in this file: the database is still empty.
  it("creates one owner with a generated one-time password, once", async () => {
    expect((await t.db.select({ n: count() }).from(users))[0]!.n).toBe(0);
    const announced: [string, string][] = [];
    await bootstrapOwner(t.db, { email: "First.Owner@Example.com", announce: (e, p) => announced.push([e, p]) });
    expect(announced).toHaveLength(1);
    const [email, password] = announced[0]!;
    expect(email).toBe("first.owner@example.com");
    expect(password.length).toBeGreaterThanOrEqual(20);

    const rows = await t.db.select().from(users);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ email, role: "owner", mustChangePassword: true, disabled: false });
    expect(rows[0]!.passwordHash).toMatch(/^\$argon2id\$/);
    expect(rows[0]!.passwordHash).not.toContain(password);

    const signedIn = await verifyCredentials(t.db, email, password);
    expect(signedIn?.id).toBe(rows[0]!.id);
    expect(signedIn?.mustChangePassword).toBe(true);
    const [ev] = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "user.bootstrap"));
    expect(ev).toMatchObject({ actorType: "system", targetId: rows[0]!.id });
    expect(JSON.stringify(ev)).not.toContain(password);

    // Second start: nothing happens.
    await bootstrapOwner(t.db, { email: "someone.else@example.com", password: "another-long-password", announce: (e, p) => announced.push([e, p]) });
    expect(announced).toHaveLength(1);
    expect(await t.db.select({ n: count() }).from(users)).toEqual([{ n: 1 }]);
  });

  it("with a configured password it announces nothing and needs no change", async () => {
    const fresh = await createTestDb();
    try {
      let calls = 0;
      await bootstrapOwner(fresh.db, { email: "boss@example.com", password: "configured-password-123", announce: () => calls++ });
      expect(calls).toBe(0);
      const [row] = await fresh.db.select().from(users);
      expect(row).toMatchObject({ email: "boss@example.com", role: "owner", mustChangePassword: false });
      expect(await verifyCredentials(fresh.db, "boss@example.com", "configured-password-123")).not.toBeNull();
      // Without an e-mail: the default address.
      const other = await createTestDb();
      try {
        await bootstrapOwner(other.db, { announce: () => calls++ });
        expect(calls).toBe(1);
        expect((await other.db.select().from(users))[0]!.email).toBe("owner@mandate.local");
      } finally {
        await other.close();
      }
    } finally {
      await fresh.close();
    }
  });
});

describe("passwords and sign-in", () => {
  it("hashes with argon2id and verifies only the right password", async () => {
    const h = await hashPassword("correct horse battery staple");
    expect(h).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(h, "correct horse battery staple")).toBe(true);
    expect(await verifyPassword(h, "correct horse battery stapl")).toBe(false);
    expect(await verifyPassword("not a hash", "x")).toBe(false);
    expect(await hashPassword("same")).not.toBe(await hashPassword("same"));
  });

  it("verifyCredentials rejects a wrong password, an unknown user and a disabled user", async () => {
    const pw = "a-very-good-password";
    const u = await makeUser(t.db, { password: pw });
    const signedIn = await verifyCredentials(t.db, u.user.email.toUpperCase(), pw);
    expect(signedIn?.id).toBe(u.user.id);
    const [row] = await t.db.select().from(users).where(eq(users.id, u.user.id));
    expect(row!.lastLoginAt).not.toBeNull();

    expect(await verifyCredentials(t.db, u.user.email, "a-very-good-passwore")).toBeNull();
    expect(await verifyCredentials(t.db, u.user.email, "")).toBeNull();
    expect(await verifyCredentials(t.db, `${uniq("nobody-")}@test.example`, pw)).toBeNull();
    expect(await verifyCredentials(t.db, "not-an-email", pw)).toBeNull();

    const disabled = await makeUser(t.db, { password: pw, disabled: true });
    expect(await verifyCredentials(t.db, disabled.user.email, pw)).toBeNull();
    // A user without a password (OIDC only) cannot sign in with one.
    const oidcOnly = await makeUser(t.db);
    expect(await verifyCredentials(t.db, oidcOnly.user.email, "")).toBeNull();
    expect(await verifyCredentials(t.db, oidcOnly.user.email, pw)).toBeNull();
  });

  it("changing one's password bumps the session version and ends older sessions", async () => {
    const pw = "old-password-0001";
    const u = await makeUser(t.db, { password: pw });
    const v1 = u.user.sessionVersion;
    expect(await actorForSession(t.db, u.user.id, v1)).not.toBeNull();

    await expectAppError(changeOwnPassword(u.ctx, { currentPassword: "wrong-password-00", newPassword: "new-password-0002" }), "validation_failed");
    await expectAppError(changeOwnPassword(u.ctx, { currentPassword: pw, newPassword: pw }), "validation_failed");
    expect(await actorForSession(t.db, u.user.id, v1)).not.toBeNull();

    const { sessionVersion } = await changeOwnPassword(u.ctx, { currentPassword: pw, newPassword: "new-password-0002" });
    expect(sessionVersion).toBe(v1 + 1);
    expect(await actorForSession(t.db, u.user.id, v1)).toBeNull();
    expect((await actorForSession(t.db, u.user.id, sessionVersion))?.userId).toBe(u.user.id);
    expect(await verifyCredentials(t.db, u.user.email, pw)).toBeNull();
    const signedIn = await verifyCredentials(t.db, u.user.email, "new-password-0002");
    expect(signedIn).toMatchObject({ id: u.user.id, mustChangePassword: false });
    const [ev] = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "user.password_change"), eq(auditEvents.targetId, u.user.id)));
    expect(JSON.stringify(ev)).not.toContain("new-password-0002");
  });

  it("actorForSession refuses unknown and disabled users", async () => {
    expect(await actorForSession(t.db, "usr_00000000000000000000000000000000", 1)).toBeNull();
    const u = await makeUser(t.db, { disabled: true });
    expect(await actorForSession(t.db, u.user.id, u.user.sessionVersion)).toBeNull();
  });
});

describe("user management", () => {
  let owner: MadeUser;
  beforeAll(async () => {
    owner = await makeUser(t.db, { role: "owner", password: "owner-password-01" });
  });

  it("owners create users; others cannot", async () => {
    const email = `${uniq("made-")}@test.example`;
    const made = await createUser(owner.ctx, createUserInput.parse({ email, role: "auditor" }));
    // No credential exists until the invitee sets one (issue 17.7): the owner gets a link, not a password.
    expect(made.user).toMatchObject({ email, role: "auditor", mustChangePassword: false, hasPassword: false, ssoLinked: false });
    expect(made.invitation.url).toMatch(/^\/invite#mdi_/);
    expect(made).not.toHaveProperty("oneTimePassword");
    expect(made.user).not.toHaveProperty("passwordHash");
    expect(await verifyCredentials(t.db, email, "")).toBeNull();
    await expectAppError(createUser(owner.ctx, createUserInput.parse({ email, role: "member" })), "conflict");

    const auditor = await makeUser(t.db, { role: "auditor" });
    const member = await makeUser(t.db);
    await expectAppError(createUser(auditor.ctx, createUserInput.parse({ email: `${uniq("x-")}@test.example` })), "forbidden");
    await expectAppError(createUser(member.ctx, createUserInput.parse({ email: `${uniq("x-")}@test.example` })), "forbidden");
    await expectAppError(updateUser(auditor.ctx, member.user.id, { role: "owner" }), "forbidden");
    expect((await listUsers(auditor.ctx, { page: 1, pageSize: 100 })).items.some((x) => x.email === email)).toBe(true);
    await expectAppError(listUsers(member.ctx, { page: 1, pageSize: 10 }), "forbidden");
    expect(createUserInput.safeParse({ email: "x@test.example", password: "a-long-enough-password" }).success).toBe(false);
  });

  it("disabling or changing a role ends the user's sessions", async () => {
    const u = await makeUser(t.db, { role: "auditor" });
    await updateUser(owner.ctx, u.user.id, { role: "member" });
    expect(await actorForSession(t.db, u.user.id, u.user.sessionVersion)).toBeNull();
    const v2 = u.user.sessionVersion + 1;
    expect(await actorForSession(t.db, u.user.id, v2)).not.toBeNull();
    await updateUser(owner.ctx, u.user.id, { name: "Renamed" });
    expect(await actorForSession(t.db, u.user.id, v2)).not.toBeNull();
    await updateUser(owner.ctx, u.user.id, { disabled: true });
    expect(await actorForSession(t.db, u.user.id, v2)).toBeNull();
    expect(await actorForSession(t.db, u.user.id, v2 + 1)).toBeNull();
  });

  it("an owner cannot demote or disable themselves", async () => {
    await expectAppError(updateUser(owner.ctx, owner.user.id, { role: "member" }), "bad_request");
    await expectAppError(updateUser(owner.ctx, owner.user.id, { disabled: true }), "bad_request");
    expect((await actorOf(t.db, owner.user.id)).globalRole).toBe("owner");
  });

  it("the last active owner cannot be demoted or disabled", async () => {
    // Isolated database: exactly two owners.
    const db2 = await createTestDb();
    try {
      const o1 = await makeUser(db2.db, { role: "owner" });
      const o2 = await makeUser(db2.db, { role: "owner" });
      await updateUser(o1.ctx, o2.user.id, { role: "member" });
      // o2's request was authorized before its demotion landed: it still must not remove the last owner.
      await expectAppError(updateUser(o2.ctx, o1.user.id, { role: "auditor" }), "conflict");
      await expectAppError(updateUser(o2.ctx, o1.user.id, { disabled: true }), "conflict");
      const [row] = await db2.db.select().from(users).where(eq(users.id, o1.user.id));
      expect(row).toMatchObject({ role: "owner", disabled: false });
    } finally {
      await db2.close();
    }
  });

  it("two owners demoting each other at once leave one owner", async () => {
    // On PostgreSQL the two transactions really overlap; repeat to make a lost race near-certain to show.
    const db2 = await createTestDb();
    try {
      for (let round = 0; round < 5; round++) {
        await db2.db.delete(users);
        const o1 = await makeUser(db2.db, { role: "owner" });
        const o2 = await makeUser(db2.db, { role: "owner" });
        const results = await Promise.allSettled([updateUser(o1.ctx, o2.user.id, { role: "member" }), updateUser(o2.ctx, o1.user.id, { disabled: true })]);
        const owners = (
          await db2.db
            .select({ n: count() })
            .from(users)
            .where(sql`${users.role} = 'owner' and not ${users.disabled}`)
        )[0]!.n;
        expect(owners, `round ${round}`).toBe(1);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected")!;
        expect(rejected.reason).toMatchObject({ code: "conflict" });
      }
    } finally {
      await db2.close();
    }
  });

  it("the file's main database kept at least one active owner", async () => {
    expect(await activeOwners()).toBeGreaterThanOrEqual(1);
  });
});
