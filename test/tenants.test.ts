import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, count, eq } from "drizzle-orm";
import { auditEvents, memberships, tenants, users } from "@/db/schema";
import { acceptInvitation } from "@/lib/auth/invitations";
import { verifyCredentials } from "@/lib/auth/users";
import { addMember, addMemberInput, createTenant, getTenant, listMembers, listTenants, removeMember, updateMember, updateTenant } from "@/lib/tenants/service";
import { actorOf, createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let owner: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  await t?.close();
});

const page = { page: 1, pageSize: 100 };
const eventsFor = (targetId: string) => t.db.select().from(auditEvents).where(eq(auditEvents.targetId, targetId)).orderBy(auditEvents.at, auditEvents.id);

describe("tenants", () => {
  it("an owner creates a tenant, and the trail records it", async () => {
    const name = uniq("Acme ");
    const created = await createTenant(owner.ctx, { name });
    expect(created).toMatchObject({ name, status: "active", slug: name.toLowerCase().replace(/ /g, "-") });
    const [row] = await t.db.select().from(tenants).where(eq(tenants.id, created.id));
    expect(row?.name).toBe(name);

    const events = await eventsFor(created.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "tenant.create", actorType: "user", actorId: owner.user.id, tenantId: created.id, before: null });
    expect(events[0]!.after).toMatchObject({ id: created.id, name });
  });

  it("a duplicate name is a conflict and writes nothing", async () => {
    const name = uniq("Dup ");
    await createTenant(owner.ctx, { name });
    const eventsBefore = await t.db.select({ n: count() }).from(auditEvents);
    const err = await expectAppError(createTenant(owner.ctx, { name }), "conflict");
    expect(err.issues).toEqual([{ path: "name", message: "already exists" }]);
    // Names differing only in case or punctuation share the slug, so they collide too.
    await expectAppError(createTenant(owner.ctx, { name: name.toUpperCase() }), "conflict");
    const rows = await t.db.select().from(tenants).where(eq(tenants.name, name));
    expect(rows).toHaveLength(1);
    expect(await t.db.select({ n: count() }).from(auditEvents)).toEqual(eventsBefore);
  });

  it("only owners create tenants", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const admin = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    const auditor = await makeUser(t.db, { role: "auditor" });
    await expectAppError(createTenant(admin.ctx, { name: uniq("Nope ") }), "forbidden");
    await expectAppError(createTenant(auditor.ctx, { name: uniq("Nope ") }), "forbidden");
  });

  it("a tenant admin lists and reads only its own tenant; other ids are not found", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });

    const list = await listTenants(adminA.ctx, page);
    expect(list.items.map((x) => x.id)).toEqual([a.id]);
    expect(list.total).toBe(1);
    expect((await getTenant(adminA.ctx, a.id)).id).toBe(a.id);
    await expectAppError(getTenant(adminA.ctx, b.id), "not_found");
    await expectAppError(getTenant(adminA.ctx, "ten_doesnotexist"), "not_found");
    await expectAppError(listMembers(adminA.ctx, b.id), "not_found");
    await expectAppError(updateTenant(adminA.ctx, b.id, { name: uniq("Hijack ") }), "not_found");
    expect((await getTenant(owner.ctx, b.id)).name).toBe(b.name);

    const lonely = await makeUser(t.db);
    expect((await listTenants(lonely.ctx, page)).items).toEqual([]);

    // Owners and global auditors see every tenant.
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    for (const who of [owner, globalAuditor]) {
      const ids = (await listTenants(who.ctx, page)).items.map((x) => x.id);
      expect(ids).toEqual(expect.arrayContaining([a.id, b.id]));
    }
  });

  it("auditors cannot update a tenant", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const tenantAuditor = await makeUser(t.db, { memberships: [[a.id, "auditor"]] });
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    await expectAppError(updateTenant(tenantAuditor.ctx, a.id, { name: uniq("Renamed ") }), "forbidden");
    await expectAppError(updateTenant(globalAuditor.ctx, a.id, { name: uniq("Renamed ") }), "forbidden");
    const [row] = await t.db.select().from(tenants).where(eq(tenants.id, a.id));
    expect(row!.name).toBe(a.name);
  });

  it("a tenant admin renames its tenant but cannot disable it; an owner can", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });

    const newName = uniq("Renamed ");
    const renamed = await updateTenant(adminA.ctx, a.id, { name: newName });
    expect(renamed.name).toBe(newName);

    await expectAppError(updateTenant(adminA.ctx, a.id, { status: "disabled" }), "forbidden");
    await expectAppError(updateTenant(adminA.ctx, a.id, { name: uniq("Sneaky "), status: "disabled" }), "forbidden");
    let [row] = await t.db.select().from(tenants).where(eq(tenants.id, a.id));
    expect(row).toMatchObject({ status: "active", name: newName });

    const disabled = await updateTenant(owner.ctx, a.id, { status: "disabled" });
    expect(disabled.status).toBe("disabled");
    [row] = await t.db.select().from(tenants).where(eq(tenants.id, a.id));
    expect(row!.status).toBe("disabled");

    const updates = (await eventsFor(a.id)).filter((e) => e.action === "tenant.update");
    expect(updates).toHaveLength(2);
    expect(updates[0]).toMatchObject({ actorId: adminA.user.id, before: { name: a.name }, after: { name: newName } });
    expect(updates[1]).toMatchObject({ actorId: owner.user.id, before: { status: "active" }, after: { status: "disabled" } });
  });

  it("disabling a tenant suspends its members until it is enabled again", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    expect((await actorOf(t.db, adminA.user.id)).tenantRoles.get(a.id)).toBe("admin");
    await updateTenant(owner.ctx, a.id, { status: "disabled" });
    const suspended = await actorOf(t.db, adminA.user.id);
    expect(suspended.tenantRoles.has(a.id)).toBe(false);
    await expectAppError(getTenant({ db: t.db, actor: suspended }, a.id), "not_found");
    await updateTenant(owner.ctx, a.id, { status: "active" });
    expect((await actorOf(t.db, adminA.user.id)).tenantRoles.get(a.id)).toBe("admin");
  });

  it("renaming onto another tenant's name is a conflict", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    await expectAppError(updateTenant(owner.ctx, b.id, { name: a.name }), "conflict");
    const [row] = await t.db.select().from(tenants).where(eq(tenants.id, b.id));
    expect(row!.name).toBe(b.name);
  });
});

describe("members", () => {
  it("adding an unknown e-mail creates the user and the membership at once, with an invitation link (no password)", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    const email = `${uniq("new-")}@Test.Example`;
    const input = addMemberInput.parse({ email, role: "auditor", name: "Newcomer" });
    const added = await addMember(adminA.ctx, a.id, input);

    expect(added.email).toBe(email.toLowerCase());
    expect(added.role).toBe("auditor");
    expect(added.invitation?.url).toMatch(/\/invite#mdi_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    const secret = added.invitation!.url.split(".").pop()!;

    const [user] = await t.db.select().from(users).where(eq(users.email, email.toLowerCase()));
    expect(user).toMatchObject({ id: added.userId, role: "member", mustChangePassword: false, name: "Newcomer", passwordHash: null });
    const [m] = await t.db
      .select()
      .from(memberships)
      .where(and(eq(memberships.tenantId, a.id), eq(memberships.userId, added.userId)));
    expect(m?.role).toBe("auditor");

    // The invitee chooses the password, and the new actor sees exactly that tenant as auditor.
    await acceptInvitation(t.db, { token: added.invitation!.url.split("#")[1]!, password: "newcomer-password-1" });
    const signedIn = await verifyCredentials(t.db, email, "newcomer-password-1");
    expect(signedIn?.id).toBe(added.userId);
    const actor = await actorOf(t.db, added.userId);
    expect([...actor.tenantRoles]).toEqual([[a.id, "auditor"]]);

    const events = (await eventsFor(added.userId)).filter((e) => e.action !== "user.invitation_accept");
    expect(events.map((e) => e.action).sort()).toEqual(["member.add", "user.create", "user.invite"]);
    for (const e of events) {
      expect(e.tenantId).toBe(a.id);
      expect(e.actorId).toBe(adminA.user.id);
      expect(JSON.stringify(e)).not.toContain(secret);
    }

    const listed = await listMembers(adminA.ctx, a.id);
    expect(listed.map((x) => x.userId).sort()).toEqual([adminA.user.id, added.userId].sort());
  });

  it("adding an existing user creates no user and returns no invitation", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const existing = await makeUser(t.db);
    const before = await t.db.select({ n: count() }).from(users);
    const added = await addMember(owner.ctx, a.id, { email: existing.user.email, role: "admin" });
    expect(added).toMatchObject({ userId: existing.user.id, role: "admin", invitation: null });
    expect(await t.db.select({ n: count() }).from(users)).toEqual(before);
  });

  it("adding the same member twice is a conflict and leaves one membership", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const email = `${uniq("twice-")}@test.example`;
    await addMember(owner.ctx, a.id, { email, role: "admin" });
    const usersBefore = await t.db.select({ n: count() }).from(users);
    const err = await expectAppError(addMember(owner.ctx, a.id, { email, role: "auditor" }), "conflict");
    expect(err.issues?.[0]?.path).toBe("email");
    const rows = await t.db
      .select()
      .from(memberships)
      .innerJoin(users, eq(users.id, memberships.userId))
      .where(and(eq(memberships.tenantId, a.id), eq(users.email, email)));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.memberships.role).toBe("admin");
    expect(await t.db.select({ n: count() }).from(users)).toEqual(usersBefore);
  });

  it("auditors and admins of other tenants cannot add members", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const auditorA = await makeUser(t.db, { memberships: [[a.id, "auditor"]] });
    const adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
    const email = `${uniq("x-")}@test.example`;
    await expectAppError(addMember(auditorA.ctx, a.id, { email, role: "admin" }), "forbidden");
    await expectAppError(addMember(adminB.ctx, a.id, { email, role: "admin" }), "not_found");
    expect(await t.db.select().from(users).where(eq(users.email, email))).toEqual([]);
  });

  it("role changes and removals are recorded with before and after, and take effect on the next actor", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    const other = await makeUser(t.db, { memberships: [[a.id, "admin"]] });

    await expectAppError(updateMember(adminA.ctx, a.id, adminA.user.id, { role: "auditor" }), "bad_request");
    await expectAppError(removeMember(adminA.ctx, a.id, adminA.user.id), "bad_request");

    await updateMember(adminA.ctx, a.id, other.user.id, { role: "auditor" });
    expect((await actorOf(t.db, other.user.id)).tenantRoles.get(a.id)).toBe("auditor");
    await removeMember(adminA.ctx, a.id, other.user.id);
    expect((await actorOf(t.db, other.user.id)).tenantRoles.has(a.id)).toBe(false);
    await expectAppError(removeMember(adminA.ctx, a.id, other.user.id), "not_found");

    const events = (await eventsFor(other.user.id)).filter((e) => e.tenantId === a.id);
    expect(events.map((e) => [e.action, e.before, e.after])).toEqual([
      ["member.update", { role: "admin" }, { role: "auditor" }],
      ["member.remove", { role: "auditor" }, null],
    ]);
  });
});
