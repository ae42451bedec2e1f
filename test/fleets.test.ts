import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ZodError } from "zod";
import { and, eq } from "drizzle-orm";
import { agents, auditEvents, bundles, enrollmentTokens, fleetServers, fleets } from "@/db/schema";
import { authenticateAgent, enrollAgent } from "@/lib/agents/service";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { actorForApiToken } from "@/lib/auth/actors";
import { createEnrollmentToken, createFleet, deleteFleet, getFleet, listEnrollmentTokens, listFleets, revokeAgent, revokeEnrollmentToken, rotateAgentKey, updateFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer, publishBundle } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  await t?.close();
});

const trailOf = (targetId: string) => t.db.select().from(auditEvents).where(eq(auditEvents.targetId, targetId)).orderBy(auditEvents.at, auditEvents.id);

/**
 * Tenants A, B, C, D. Server sA belongs to A; sB belongs to B and is shared
 * with C. Fleet 1 serves sA, fleet 2 serves sB, fleet 3 serves both.
 */
async function world() {
  const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(() => makeTenant(t.db, owner.actor)));
  const sA = await makeServer(owner.ctx, a!.id);
  const sB = await makeServer(owner.ctx, b!.id, [c!.id]);
  const f1 = await createFleet(owner.ctx, { name: uniq("Fleet "), serverIds: [sA.id] });
  const f2 = await createFleet(owner.ctx, { name: uniq("Fleet "), serverIds: [sB.id] });
  const f3 = await createFleet(owner.ctx, { name: uniq("Fleet "), serverIds: [sA.id, sB.id] });
  const adminA = await makeUser(t.db, { memberships: [[a!.id, "admin"]] });
  const auditorC = await makeUser(t.db, { memberships: [[c!.id, "auditor"]] });
  const adminD = await makeUser(t.db, { memberships: [[d!.id, "admin"]] });
  return { a: a!, b: b!, c: c!, d: d!, sA, sB, f1: f1!, f2: f2!, f3: f3!, adminA, auditorC, adminD };
}

describe("fleets", () => {
  it("an owner creates a fleet; the trail records it without a tenant, in the same transaction", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const s1 = await makeServer(owner.ctx, tenant.id);
    const s2 = await makeServer(owner.ctx, tenant.id);
    const name = uniq("Edge fleet ");
    const f = (await createFleet(owner.ctx, { name: `  ${name} `, description: "eu-west", serverIds: [s1.id, s2.id, s1.id] }))!;
    expect(f).toMatchObject({ name, description: "eu-west", activeRevision: null });
    expect([...f.serverIds].sort()).toEqual([s1.id, s2.id].sort());
    expect(f.id).toMatch(/^flt_[0-9a-f]{32}$/);

    const got = await getFleet(owner.ctx, f.id);
    expect(got).toMatchObject({ id: f.id, name, activeRevision: null, agents: [] });
    expect([...got.serverIds].sort()).toEqual([s1.id, s2.id].sort());

    const events = await trailOf(f.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "fleet.create", targetType: "fleet", tenantId: null, actorId: owner.user.id, actorType: "user" });
    expect(events[0]!.after).toMatchObject({ id: f.id, name });
  });

  it("only owners create, change or delete fleets", async () => {
    const w = await world();
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    const member = await makeUser(t.db);
    for (const who of [w.adminA, globalAuditor, w.auditorC, member]) {
      await expectAppError(createFleet(who.ctx, { name: uniq("Nope "), serverIds: [] }), "forbidden");
    }
    // Readers of the fleet get 403; those who cannot see it get 404.
    await expectAppError(updateFleet(w.adminA.ctx, w.f1.id, { name: uniq("Renamed ") }), "forbidden");
    await expectAppError(updateFleet(globalAuditor.ctx, w.f1.id, { description: "x" }), "forbidden");
    await expectAppError(deleteFleet(w.adminA.ctx, w.f1.id), "forbidden");
    await expectAppError(updateFleet(w.adminD.ctx, w.f1.id, { name: uniq("Renamed ") }), "not_found");
    await expectAppError(deleteFleet(w.adminD.ctx, w.f1.id), "not_found");
    await expectAppError(createEnrollmentToken(w.adminA.ctx, w.f1.id), "forbidden");
    await expectAppError(createEnrollmentToken(globalAuditor.ctx, w.f1.id), "forbidden");
    await expectAppError(createEnrollmentToken(w.adminD.ctx, w.f1.id), "not_found");
    expect(await t.db.select().from(fleets).where(eq(fleets.id, w.f1.id))).toHaveLength(1);

    // An owner API token acts as an owner; an auditor token does not.
    const ownerTok = await createApiToken(owner.ctx, createTokenInput.parse({ name: uniq("ot-"), role: "owner" }));
    const asToken = await actorForApiToken(t.db, ownerTok.token);
    const viaToken = (await createFleet({ db: t.db, actor: asToken! }, { name: uniq("Token fleet ") }))!;
    expect((await trailOf(viaToken.id))[0]).toMatchObject({ actorType: "token", actorId: ownerTok.id });
    const audTok = await createApiToken(globalAuditor.ctx, createTokenInput.parse({ name: uniq("at-"), role: "auditor" }));
    await expectAppError(createFleet({ db: t.db, actor: (await actorForApiToken(t.db, audTok.token))! }, { name: uniq("Nope ") }), "forbidden");
  });

  it("tenant members read only fleets serving a server their tenant may use", async () => {
    const w = await world();
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    const ids = (items: { id: string }[]) =>
      items
        .map((f) => f.id)
        .filter((id) => [w.f1.id, w.f2.id, w.f3.id].includes(id))
        .sort();

    expect(ids((await listFleets(owner.ctx)).items)).toEqual([w.f1.id, w.f2.id, w.f3.id].sort());
    expect(ids((await listFleets(globalAuditor.ctx)).items)).toEqual([w.f1.id, w.f2.id, w.f3.id].sort());
    // A owns sA: fleets 1 and 3.
    expect(ids((await listFleets(w.adminA.ctx)).items)).toEqual([w.f1.id, w.f3.id].sort());
    // C may use sB (shared): fleets 2 and 3.
    expect(ids((await listFleets(w.auditorC.ctx)).items)).toEqual([w.f2.id, w.f3.id].sort());
    // D uses nothing.
    expect(ids((await listFleets(w.adminD.ctx)).items)).toEqual([]);
    expect((await listFleets((await makeUser(t.db)).ctx)).items).toEqual([]);

    expect((await getFleet(w.adminA.ctx, w.f1.id)).serverIds).toEqual([w.sA.id]);
    await expectAppError(getFleet(w.adminA.ctx, w.f2.id), "not_found");
    await expectAppError(getFleet(w.adminD.ctx, w.f3.id), "not_found");
    await expectAppError(getFleet(w.adminA.ctx, "flt_nope"), "not_found");
    // A member sees only the servers of the fleet that its tenants may use.
    expect((await getFleet(w.adminA.ctx, w.f3.id)).serverIds).toEqual([w.sA.id]);
    expect((await getFleet(w.auditorC.ctx, w.f3.id)).serverIds).toEqual([w.sB.id]);
    expect([...(await getFleet(globalAuditor.ctx, w.f3.id)).serverIds].sort()).toEqual([w.sA.id, w.sB.id].sort());

    // Visibility follows the servers: a fleet serving nothing of C's is gone for C.
    await updateFleet(owner.ctx, w.f2.id, { serverIds: [] });
    await expectAppError(getFleet(w.auditorC.ctx, w.f2.id), "not_found");
    // Enrollment tokens are for owners and global auditors only.
    await expectAppError(listEnrollmentTokens(w.adminA.ctx, w.f1.id), "forbidden");
    expect(await listEnrollmentTokens(globalAuditor.ctx, w.f1.id)).toEqual([]);
  });

  it("unknown server ids fail validation naming each serverIds.N; nothing is written", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const s = await makeServer(owner.ctx, tenant.id);
    const name = uniq("Bad ");
    const err = await expectAppError(createFleet(owner.ctx, { name, serverIds: ["srv_nope", s.id, "x"] }), "validation_failed");
    expect(err.issues).toEqual([
      { path: "serverIds.0", message: "unknown server" },
      { path: "serverIds.2", message: "unknown server" },
    ]);
    expect(await t.db.select().from(fleets).where(eq(fleets.name, name))).toEqual([]);

    const f = (await createFleet(owner.ctx, { name, serverIds: [s.id] }))!;
    const err2 = await expectAppError(updateFleet(owner.ctx, f.id, { name: uniq("Other "), serverIds: [s.id, "srv_gone"] }), "validation_failed");
    expect(err2.issues).toEqual([{ path: "serverIds.1", message: "unknown server" }]);
    const [row] = await t.db.select().from(fleets).where(eq(fleets.id, f.id));
    expect(row!.name).toBe(name);
    expect(await t.db.select().from(fleetServers).where(eq(fleetServers.fleetId, f.id))).toEqual([{ fleetId: f.id, serverId: s.id }]);
    expect((await trailOf(f.id)).map((e) => e.action)).toEqual(["fleet.create"]);
  });

  it("a duplicate fleet name is a conflict on path name", async () => {
    const name = uniq("Dup ");
    await createFleet(owner.ctx, { name });
    const err = await expectAppError(createFleet(owner.ctx, { name }), "conflict");
    expect(err.issues).toEqual([{ path: "name", message: "already exists" }]);
    const other = (await createFleet(owner.ctx, { name: uniq("Dup2 ") }))!;
    const err2 = await expectAppError(updateFleet(owner.ctx, other.id, { name }), "conflict");
    expect(err2.issues?.[0]?.path).toBe("name");
    expect((await trailOf(other.id)).map((e) => e.action)).toEqual(["fleet.create"]);
  });

  it("updates change only what they name, and record before and after", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const [s1, s2] = [await makeServer(owner.ctx, tenant.id), await makeServer(owner.ctx, tenant.id)];
    const f = (await createFleet(owner.ctx, { name: uniq("Upd "), description: "one", serverIds: [s1.id] }))!;
    const d = (await updateFleet(owner.ctx, f.id, { description: "two" }))!;
    expect(d).toMatchObject({ name: f.name, description: "two", serverIds: [s1.id] });
    const s = (await updateFleet(owner.ctx, f.id, { serverIds: [s2.id] }))!;
    expect(s).toMatchObject({ name: f.name, description: "two", serverIds: [s2.id] });
    const events = await trailOf(f.id);
    expect(events.map((e) => e.action)).toEqual(["fleet.create", "fleet.update", "fleet.update"]);
    expect(events[2]).toMatchObject({ tenantId: null, before: expect.objectContaining({ serverIds: [s1.id] }), after: expect.objectContaining({ serverIds: [s2.id] }) });
    await expect(updateFleet(owner.ctx, f.id, {})).rejects.toBeInstanceOf(ZodError);
  });

  it("deleting a fleet removes its agents, tokens and bundles, and is recorded", async () => {
    const f = (await createFleet(owner.ctx, { name: uniq("Del ") }))!;
    const tok = await createEnrollmentToken(owner.ctx, f.id);
    const enrolled = await enrollAgent(t.db, { token: tok.token, name: "a1", version: "1.0.0" });
    await createEnrollmentToken(owner.ctx, f.id);
    await publishBundle(t.db, f.id, 1);
    await deleteFleet(owner.ctx, f.id);
    await expectAppError(getFleet(owner.ctx, f.id), "not_found");
    expect(await t.db.select().from(agents).where(eq(agents.fleetId, f.id))).toEqual([]);
    expect(await t.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.fleetId, f.id))).toEqual([]);
    expect(await t.db.select().from(bundles).where(eq(bundles.fleetId, f.id))).toEqual([]);
    expect(await authenticateAgent(t.db, enrolled.agentKey)).toBeNull();
    const events = await trailOf(f.id);
    expect(events.map((e) => e.action)).toEqual(["fleet.create", "fleet.delete"]);
    expect(events[1]!.before).toMatchObject({ id: f.id, agentCount: 1 });
    await expectAppError(deleteFleet(owner.ctx, f.id), "not_found");
  });

  it("getFleet lists agents with their state and the active revision", async () => {
    const f = (await createFleet(owner.ctx, { name: uniq("State ") }))!;
    const a1 = await enrollAgent(t.db, { token: (await createEnrollmentToken(owner.ctx, f.id)).token, name: "edge-1", version: "0.1.0" });
    const a2 = await enrollAgent(t.db, { token: (await createEnrollmentToken(owner.ctx, f.id)).token, name: "edge-2", version: "0.1.1" });
    await revokeAgent(owner.ctx, a2.agentId);
    await publishBundle(t.db, f.id, 1);
    await publishBundle(t.db, f.id, 2);
    const got = await getFleet(owner.ctx, f.id);
    expect(got.activeRevision).toBe(2);
    expect(got.agents.map((a) => a.id)).toEqual([a2.agentId, a1.agentId]);
    expect(got.agents[1]).toMatchObject({ name: "edge-1", version: "0.1.0", bundleRevision: null, lastError: null, counters: {}, revokedAt: null });
    expect(got.agents[1]!.lastSeenAt).not.toBeNull();
    expect(got.agents[0]!.revokedAt).not.toBeNull();
    expect(JSON.stringify(got)).not.toMatch(/keyHash|key_hash/);
    const listed = (await listFleets(owner.ctx)).items.find((x) => x.id === f.id);
    expect(listed).toMatchObject({ activeRevision: 2, agentCount: 1 });
  });
});

describe("enrollment tokens and agent credentials (admin side)", () => {
  it("mints a token shown once, lists it without secret, and records it", async () => {
    const f = (await createFleet(owner.ctx, { name: uniq("Enr ") }))!;
    const before = Date.now();
    const tok = await createEnrollmentToken(owner.ctx, f.id);
    expect(tok.token).toMatch(/^mde_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    expect(tok.token.slice(4, 36)).toBe(tok.id.slice(4));
    const ttl = new Date(tok.expiresAt).getTime() - before;
    expect(ttl).toBeGreaterThanOrEqual(60 * 60_000 - 1000);
    expect(ttl).toBeLessThanOrEqual(60 * 60_000 + 5000);
    const week = await createEnrollmentToken(owner.ctx, f.id, { ttlMinutes: 7 * 24 * 60 });
    expect(new Date(week.expiresAt).getTime() - Date.now()).toBeGreaterThan(7 * 86_400_000 - 60_000);
    await expect(createEnrollmentToken(owner.ctx, f.id, { ttlMinutes: 7 * 24 * 60 + 1 })).rejects.toBeInstanceOf(ZodError);
    await expect(createEnrollmentToken(owner.ctx, f.id, { ttlMinutes: 0 })).rejects.toBeInstanceOf(ZodError);

    const listed = await listEnrollmentTokens(owner.ctx, f.id);
    expect(listed.map((x) => x.id)).toEqual([week.id, tok.id]);
    expect(listed[1]).toMatchObject({ id: tok.id, fleetId: f.id, status: "active", createdBy: owner.user.id, usedAt: null, usedByAgentId: null });
    const secret = tok.token.split(".")[1]!;
    expect(JSON.stringify(listed)).not.toContain(secret);
    const events = await trailOf(tok.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "enrollment_token.create", targetType: "enrollment_token", tenantId: null });
    expect(JSON.stringify(events)).not.toContain(secret);
    await expectAppError(createEnrollmentToken(owner.ctx, "flt_missing"), "not_found");
  });

  it("revoking a token deletes it (enrollment then fails); a used token cannot be revoked", async () => {
    const f = (await createFleet(owner.ctx, { name: uniq("Rev ") }))!;
    const tok = await createEnrollmentToken(owner.ctx, f.id);
    await revokeEnrollmentToken(owner.ctx, f.id, tok.id);
    expect(await listEnrollmentTokens(owner.ctx, f.id)).toEqual([]);
    await expectAppError(enrollAgent(t.db, { token: tok.token, name: "x", version: "1" }), "unauthenticated");
    await expectAppError(revokeEnrollmentToken(owner.ctx, f.id, tok.id), "not_found");
    expect((await trailOf(tok.id)).map((e) => e.action)).toEqual(["enrollment_token.create", "enrollment_token.revoke"]);

    const used = await createEnrollmentToken(owner.ctx, f.id);
    await enrollAgent(t.db, { token: used.token, name: "x", version: "1" });
    await expectAppError(revokeEnrollmentToken(owner.ctx, f.id, used.id), "conflict");
    expect((await listEnrollmentTokens(owner.ctx, f.id))[0]).toMatchObject({ id: used.id, status: "used" });
    // Another fleet's id does not reach the token.
    const other = (await createFleet(owner.ctx, { name: uniq("Rev2 ") }))!;
    const tok2 = await createEnrollmentToken(owner.ctx, f.id);
    await expectAppError(revokeEnrollmentToken(owner.ctx, other.id, tok2.id), "not_found");
  });

  it("rotating a key: the old key fails, the new one works; revoking: nothing works; both recorded", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const s = await makeServer(owner.ctx, tenant.id);
    const f = (await createFleet(owner.ctx, { name: uniq("Rot "), serverIds: [s.id] }))!;
    const admin = await makeUser(t.db, { memberships: [[tenant.id, "admin"]] });
    const outsider = await makeUser(t.db, { memberships: [[(await makeTenant(t.db, owner.actor)).id, "admin"]] });
    const { agentId, agentKey } = await enrollAgent(t.db, { token: (await createEnrollmentToken(owner.ctx, f.id)).token, name: "rot", version: "1" });
    expect((await authenticateAgent(t.db, agentKey))?.id).toBe(agentId);

    await expectAppError(rotateAgentKey(admin.ctx, agentId), "forbidden");
    await expectAppError(rotateAgentKey(outsider.ctx, agentId), "not_found");
    await expectAppError(rotateAgentKey(owner.ctx, "agt_missing"), "not_found");
    const rotated = await rotateAgentKey(owner.ctx, agentId);
    expect(rotated.agentKey).toMatch(/^mda_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    expect(rotated.agentKey).not.toBe(agentKey);
    expect(await authenticateAgent(t.db, agentKey)).toBeNull();
    expect((await authenticateAgent(t.db, rotated.agentKey))?.id).toBe(agentId);
    const [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row!.keyRotatedAt).not.toBeNull();

    await expectAppError(revokeAgent(admin.ctx, agentId), "forbidden");
    await expectAppError(revokeAgent(outsider.ctx, agentId), "not_found");
    await revokeAgent(owner.ctx, agentId);
    expect(await authenticateAgent(t.db, rotated.agentKey)).toBeNull();
    await expectAppError(revokeAgent(owner.ctx, agentId), "conflict");
    await expectAppError(rotateAgentKey(owner.ctx, agentId), "conflict");

    const events = await trailOf(agentId);
    expect(events.map((e) => e.action)).toEqual(["agent.enroll", "agent.rotate_key", "agent.revoke"]);
    expect(events.every((e) => e.tenantId === null)).toBe(true);
    expect(events[0]).toMatchObject({ actorType: "system" });
    expect(events[1]).toMatchObject({ actorType: "user", actorId: owner.user.id });
    const secrets = [agentKey, rotated.agentKey].map((k) => k.split(".")[1]!);
    for (const secret of secrets) expect(JSON.stringify(events)).not.toContain(secret);
    expect(
      await t.db
        .select()
        .from(agents)
        .where(and(eq(agents.id, agentId), eq(agents.fleetId, f.id))),
    ).toHaveLength(1);
  });
});
