import { randomBytes } from "node:crypto";
import { and, count, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents, auditEvents, fleetServers, fleets, vaultEntries, vaultVersions } from "@/db/schema";
import { addTool } from "@/lib/catalog/service";
import { activeBundle, publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { createEntry, getEntry, listEntries, resolveCredential, retireEntry, rotateEntry, updateEntry, vaultMaintenance } from "@/lib/vault/service";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const ring = [kek];
const SECRET_A1 = `tenant-a-key-${randomBytes(8).toString("hex")}`;
const SECRET_A2 = `tenant-a-key-v2-${randomBytes(8).toString("hex")}`;
const SECRET_SHARED = `shared-key-${randomBytes(8).toString("hex")}`;
const BASIC_PASSWORD = `basic-pass-${randomBytes(8).toString("hex")}`;
const OAUTH_SECRET = `oauth-client-secret-${randomBytes(8).toString("hex")}`;
const allSecrets = () => [SECRET_A1, SECRET_A2, SECRET_SHARED, BASIC_PASSWORD, OAUTH_SECRET, ...extraSecrets];
const extraSecrets: string[] = [];

type Agentish = { id: string; name: string; fleetId: string };

describe("upstream credential vault", () => {
  let t: TestDb;
  let owner: MadeUser;
  let adminA: MadeUser;
  let adminB: MadeUser;
  let auditorA: MadeUser;
  let tenantA: string;
  let tenantB: string;
  let tenantC: string;
  let serverId: string;
  let emptyServerId: string;
  let otherServerId: string;
  let fleetId: string;
  let agentF: Agentish;
  let agentG: Agentish;
  let entryA: string;
  let sharedEntry: string;

  const countRows = async () => {
    const [[e], [v]] = await Promise.all([t.db.select({ n: count() }).from(vaultEntries), t.db.select({ n: count() }).from(vaultVersions)]);
    return { entries: e!.n, versions: v!.n };
  };
  const liveCredentials = async () => ((await activeBundle(t.db, fleetId))!.content as unknown as BundleContent).credentials ?? [];

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantA = (await makeTenant(t.db, owner.actor)).id;
    tenantB = (await makeTenant(t.db, owner.actor)).id;
    tenantC = (await makeTenant(t.db, owner.actor)).id;
    adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
    adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
    auditorA = await makeUser(t.db, { memberships: [[tenantA, "auditor"]] });
    // Owned by A, shared with B; C may not use it.
    serverId = (await makeServer(owner.ctx, tenantA, [tenantB]))!.id;
    emptyServerId = (await makeServer(owner.ctx, tenantA))!.id;
    otherServerId = (await makeServer(owner.ctx, tenantC))!.id;
    await addTool(owner.ctx, serverId, { name: "get_ticket", description: "get", inputSchema: { type: "object", properties: { id: { type: "string" } } }, annotations: {}, risk: "low" });
    fleetId = newId("fleet");
    const otherFleet = newId("fleet");
    await t.db.insert(fleets).values([
      { id: fleetId, name: "fleet F" },
      { id: otherFleet, name: "fleet G" },
    ]);
    await t.db.insert(fleetServers).values([
      { fleetId, serverId },
      { fleetId, serverId: emptyServerId },
      { fleetId: otherFleet, serverId: otherServerId },
    ]);
    agentF = { id: newId("agent"), name: "agent-f", fleetId };
    agentG = { id: newId("agent"), name: "agent-g", fleetId: otherFleet };
    await t.db.insert(agents).values([
      { ...agentF, keyHash: "x" },
      { ...agentG, keyHash: "x" },
    ]);
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
  });
  afterAll(() => t.close());

  it("creates entries write-only: answers, lists and the bundle show a fingerprint at most", async () => {
    const a = await createEntry(
      adminA.ctx,
      { serverId, tenantId: tenantA, name: "Tickets API key (A)", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: SECRET_A1, owner: "ops@a", rotationIntervalDays: 30 },
      kek,
    );
    entryA = a.id;
    expect(a).toMatchObject({ currentVersion: 1, status: "active", kind: "api_key", rotationDue: false, lastChars: SECRET_A1.slice(-4) });
    expect(a.fingerprint).toMatch(/^[0-9a-f]{12}$/);
    expect(a.nextRotationAt).not.toBeNull();
    const shared = await createEntry(owner.ctx, { serverId, tenantId: null, name: "Shared key", kind: "api_key", placement: { in: "query", name: "api_key" }, secret: SECRET_SHARED }, kek);
    sharedEntry = shared.id;
    const basic = await createEntry(owner.ctx, { serverId: emptyServerId, tenantId: tenantA, name: "Basic", kind: "basic", secret: { username: "svc", password: BASIC_PASSWORD } }, kek);
    expect(basic.placement).toEqual({ in: "header", name: "authorization" });
    const oauth = await createEntry(
      owner.ctx,
      {
        serverId: otherServerId,
        tenantId: tenantC,
        name: "OAuth",
        kind: "oauth_client_credentials",
        oauth: { tokenUrl: "https://as.example/token", clientId: "cid", authMethod: "client_secret_post" },
        secret: { clientSecret: OAUTH_SECRET },
      },
      kek,
    );
    expect(oauth.oauth).toMatchObject({ clientId: "cid" });

    const listed = await listEntries(adminA.ctx, {});
    const shown = JSON.stringify([listed, await getEntry(adminA.ctx, entryA), a, shared, basic, oauth]);
    for (const s of allSecrets()) expect(shown).not.toContain(s);
    expect(shown).not.toContain("ciphertext");
    expect(shown).not.toContain("wrappedKey");
    // Tenant A's admin sees A's entries and the shared one, not C's.
    expect(listed.items.map((e) => e.id).sort()).toEqual([entryA, sharedEntry, basic.id].sort());
    expect((await listEntries(adminB.ctx, {})).items.map((e) => e.id)).toEqual([sharedEntry]);
    // The live bundle names the entries and versions, without secrets.
    const creds = await liveCredentials();
    expect(creds.find((c) => c.entryId === entryA)).toMatchObject({ serverId, tenantId: tenantA, version: 1, placement: { in: "header", name: "x-api-key" } });
    expect(JSON.stringify(creds)).not.toContain(SECRET_A1);
  });

  it("refuses bad input with clear errors and changes nothing", async () => {
    const before = await countRows();
    const base = { serverId, tenantId: tenantB, name: "B key", kind: "api_key" as const, placement: { in: "header" as const, name: "x-api-key" }, secret: "b-secret-0123456789" };
    const cases: [string, Parameters<typeof createEntry>[1], RegExp][] = [
      ["placement query for basic", { ...base, kind: "basic", placement: { in: "query", name: "k" }, secret: { username: "u", password: "p" } }, /only an api_key can go into the query/],
      ["wrong secret shape for the kind", { ...base, kind: "basic" }, /basic secret is \{username, password\}/],
      ["empty secret", { ...base, secret: "   " }, /must not be empty/],
      ["oversize secret", { ...base, secret: "x".repeat(8 * 1024 + 1) }, /at most 8 KiB/],
      ["line break in a header value", { ...base, secret: "abc\r\nX-Evil: 1" }, /line breaks/],
      ["hop-by-hop header", { ...base, placement: { in: "header", name: "Connection" } }, /connection header cannot carry/],
      ["host header", { ...base, placement: { in: "header", name: "host" } }, /host header/],
      ["not a header name", { ...base, placement: { in: "header", name: "x api key" } }, /not a valid HTTP header name/],
      ["api_key without placement", { ...base, placement: undefined }, /needs a placement/],
      ["oauth without settings", { ...base, kind: "oauth_client_credentials", placement: undefined, secret: { clientSecret: "s" } }, /oauth.*required/],
      ["tenant not allowed on the server", { ...base, tenantId: tenantC }, /may not use the server/],
    ];
    for (const [what, input, message] of cases) {
      const err = await expectAppError(createEntry(owner.ctx, input, kek), "validation_failed");
      expect(err.message, what).toMatch(message);
      expect(err.message, what).not.toContain("b-secret-0123456789");
    }
    await expectAppError(createEntry(owner.ctx, { ...base, serverId: newId("server") }, kek), "not_found");
    await expectAppError(createEntry(owner.ctx, { ...base, tenantId: tenantA }, kek), "conflict");
    await expectAppError(rotateEntry(owner.ctx, newId("vaultEntry"), { secret: "whatever-0123456789" }, kek), "not_found");
    await expectAppError(rotateEntry(owner.ctx, entryA, { secret: "" }, kek), "validation_failed");
    await expectAppError(rotateEntry(owner.ctx, entryA, { secret: "y".repeat(9000) }, kek), "validation_failed");
    await expectAppError(rotateEntry(owner.ctx, entryA, { secret: "ok-secret-0123456789", graceSeconds: 31 * 86400 }, kek), "validation_failed");
    await expectAppError(updateEntry(owner.ctx, entryA, { placement: { in: "header", name: "cookie" } }, kek), "validation_failed");
    expect(await countRows()).toEqual(before);
  });

  it("keeps tenants apart: B's admin gets 404 on A's entry, A's auditor 403 on writes", async () => {
    const before = await countRows();
    await expectAppError(getEntry(adminB.ctx, entryA), "not_found");
    await expectAppError(rotateEntry(adminB.ctx, entryA, { secret: "b-tries-0123456789" }, kek), "not_found");
    await expectAppError(retireEntry(adminB.ctx, entryA, kek), "not_found");
    await expectAppError(updateEntry(adminB.ctx, entryA, { name: "mine" }, kek), "not_found");
    expect((await getEntry(auditorA.ctx, entryA)).id).toBe(entryA);
    await expectAppError(rotateEntry(auditorA.ctx, entryA, { secret: "auditor-0123456789" }, kek), "forbidden");
    await expectAppError(createEntry(auditorA.ctx, { serverId: emptyServerId, tenantId: null, name: "x", kind: "bearer", secret: "tok-0123456789" }, kek), "forbidden");
    // B reads the shared entry (B may use the server) but only the owning tenant's admins change it.
    expect((await getEntry(adminB.ctx, sharedEntry)).tenantId).toBeNull();
    await expectAppError(rotateEntry(adminB.ctx, sharedEntry, { secret: "b-shared-0123456789" }, kek), "forbidden");
    expect(await countRows()).toEqual(before);
  });

  it("brokers to agents of the serving fleet only, tenant entry first, and trails every resolution without the value", async () => {
    const a = await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA }, ring);
    expect(a).toMatchObject({ entryId: entryA, kind: "api_key", version: 1, secret: SECRET_A1, ttlSeconds: 300, placement: { in: "header", name: "x-api-key" } });
    // B has no entry of its own: the shared one.
    expect(await resolveCredential(t.db, agentF, { serverId, tenantId: tenantB }, ring)).toMatchObject({ entryId: sharedEntry, secret: SECRET_SHARED });
    // Basic secrets come back as {username, password}.
    expect((await resolveCredential(t.db, agentF, { serverId: emptyServerId, tenantId: tenantA }, ring)).secret).toEqual({ username: "svc", password: BASIC_PASSWORD });

    const forbidden = [
      await expectAppError(resolveCredential(t.db, agentG, { serverId, tenantId: tenantA }, ring), "forbidden"),
      await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantC }, ring), "forbidden"),
      await expectAppError(resolveCredential(t.db, agentF, { serverId: newId("server"), tenantId: tenantA }, ring), "forbidden"),
      // A server of another fleet, even with an entry for that tenant.
      await expectAppError(resolveCredential(t.db, agentF, { serverId: otherServerId, tenantId: tenantC }, ring), "forbidden"),
    ];
    expect(forbidden.map((e) => e.message)).toEqual([
      "This agent's fleet does not serve this server",
      "This tenant may not use this server",
      "This agent's fleet does not serve this server",
      "This agent's fleet does not serve this server",
    ]);
    // Served by the fleet, but only A may use this server.
    await expectAppError(resolveCredential(t.db, agentF, { serverId: emptyServerId, tenantId: tenantB }, ring), "forbidden");
    // Served and allowed, but no entry for (server, tenant) and none shared (inside a rolled-back transaction).
    const none = await expectAppError(
      t.db.transaction(async (tx) => {
        await tx.delete(vaultEntries).where(eq(vaultEntries.serverId, emptyServerId));
        await resolveCredential(tx, agentF, { serverId: emptyServerId, tenantId: tenantA }, ring);
      }),
      "not_found",
    );
    expect(none.message).toMatch(/Credential for this server and tenant not found/);
    await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 9 }, ring), "not_found");

    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "vault.resolve"));
    expect(trail.length).toBe(3);
    expect(trail.find((r) => r.targetId === entryA)).toMatchObject({ actorType: "agent", actorId: agentF.id, actorLabel: "agent-f", tenantId: tenantA, after: { version: 1, serverId, fleetId } });
  });

  it("rotates with a grace period: the new version is current and in the bundle, the old one resolvable until the grace ends", async () => {
    const rotated = await rotateEntry(adminA.ctx, entryA, { secret: SECRET_A2, graceSeconds: 60 }, kek);
    expect(rotated.currentVersion).toBe(2);
    expect(rotated.versions.map((v) => [v.version, v.status])).toEqual([
      [2, "current"],
      [1, "grace"],
    ]);
    const graceUntil = new Date(rotated.versions[1]!.graceUntil!);
    expect(graceUntil.getTime() - Date.now()).toBeGreaterThan(55_000);
    // The fleet's live bundle carries the new version at once.
    expect((await liveCredentials()).find((c) => c.entryId === entryA)?.version).toBe(2);

    expect(await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA }, ring)).toMatchObject({ version: 2, secret: SECRET_A2 });
    const old = await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 1 }, ring);
    expect(old).toMatchObject({ version: 1, secret: SECRET_A1, graceUntil: graceUntil.toISOString() });
    expect(old.ttlSeconds).toBeLessThanOrEqual(60);
    // After the grace: retired for the broker even before the job runs.
    const after = new Date(graceUntil.getTime() + 1000);
    const err = await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 1 }, ring, after), "not_found");
    expect(err.message).toMatch(/retired/);
    expect(await vaultMaintenance(t.db, kek, after)).toEqual({ activated: 0, retired: 1 });
    const [v1] = await t.db
      .select()
      .from(vaultVersions)
      .where(and(eq(vaultVersions.entryId, entryA), eq(vaultVersions.version, 1)));
    expect(v1).toMatchObject({ status: "retired", retiredAt: graceUntil });
    await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 1 }, ring), "not_found");

    // Grace 0: the previous version is retired at once.
    const s3 = `tenant-a-key-v3-${randomBytes(8).toString("hex")}`;
    extraSecrets.push(s3);
    const r3 = await rotateEntry(adminA.ctx, entryA, { secret: s3, graceSeconds: 0 }, kek);
    expect(r3.versions.map((v) => [v.version, v.status])).toEqual([
      [3, "current"],
      [2, "retired"],
      [1, "retired"],
    ]);
    await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 2 }, ring), "not_found");
  });

  it("schedules a rotation and activates it with vaultMaintenance", async () => {
    const s4 = `tenant-a-key-v4-${randomBytes(8).toString("hex")}`;
    extraSecrets.push(s4);
    const activateAt = new Date(Date.now() + 3600_000);
    const r = await rotateEntry(adminA.ctx, entryA, { secret: s4, graceSeconds: 600, activateAt: activateAt.toISOString() }, kek);
    expect(r.currentVersion).toBe(3);
    expect(r.versions[0]).toMatchObject({ version: 4, status: "scheduled", activatesAt: activateAt.toISOString() });
    await expectAppError(rotateEntry(adminA.ctx, entryA, { secret: "another-0123456789", activateAt: new Date(Date.now() + 7200_000) }, kek), "conflict");
    await expectAppError(resolveCredential(t.db, agentF, { serverId, tenantId: tenantA, version: 4 }, ring), "not_found");
    expect((await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA }, ring)).version).toBe(3);
    expect(await vaultMaintenance(t.db, kek, new Date(activateAt.getTime() - 1000))).toEqual({ activated: 0, retired: 0 });

    const at = new Date(activateAt.getTime() + 1000);
    expect(await vaultMaintenance(t.db, kek, at)).toEqual({ activated: 1, retired: 0 });
    const e = await getEntry(owner.ctx, entryA);
    expect(e.currentVersion).toBe(4);
    expect(e.versions.slice(0, 2).map((v) => [v.version, v.status, v.graceUntil])).toEqual([
      [4, "current", null],
      [3, "grace", new Date(activateAt.getTime() + 600_000).toISOString()],
    ]);
    expect((await liveCredentials()).find((c) => c.entryId === entryA)?.version).toBe(4);
    expect(await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA }, ring)).toMatchObject({ version: 4, secret: s4 });
    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "vault.activate"));
    expect(trail).toHaveLength(1);
    expect(trail[0]).toMatchObject({ actorType: "system", targetId: entryA, tenantId: tenantA });
  });

  it("flags a rotation as due and updates metadata", async () => {
    const e = await updateEntry(adminA.ctx, entryA, { name: "Renamed", rotationIntervalDays: 1, notes: "rotate monthly" }, kek);
    expect(e).toMatchObject({ name: "Renamed", rotationIntervalDays: 1, notes: "rotate monthly" });
    // The current version became current at (scheduled) activation, an hour from now: due a day after that.
    expect(new Date(e.nextRotationAt!).getTime()).toBeGreaterThan(Date.now() + 86_400_000);
    await t.db
      .update(vaultEntries)
      .set({ nextRotationAt: new Date(Date.now() - 1000) })
      .where(eq(vaultEntries.id, entryA));
    expect((await getEntry(adminA.ctx, entryA)).rotationDue).toBe(true);
  });

  it("retires an entry: gone from the bundle, not resolvable, and rotating it is a clear 409 that changes nothing", async () => {
    const r = await retireEntry(adminA.ctx, entryA, kek);
    expect(r.status).toBe("retired");
    expect(r.versions.every((v) => v.status === "retired")).toBe(true);
    expect((await liveCredentials()).some((c) => c.entryId === entryA)).toBe(false);
    // Tenant A now falls back to the shared entry.
    expect((await resolveCredential(t.db, agentF, { serverId, tenantId: tenantA }, ring)).entryId).toBe(sharedEntry);
    const before = await countRows();
    const err = await expectAppError(rotateEntry(adminA.ctx, entryA, { secret: "after-retire-0123456789" }, kek), "conflict");
    expect(err.message).toMatch(/retired/);
    await expectAppError(retireEntry(adminA.ctx, entryA, kek), "conflict");
    expect(await countRows()).toEqual(before);
  });

  it("stores no secret anywhere: a dump of every table contains none of them", async () => {
    // postgres.js answers an array of rows, PGlite { rows }.
    const rowsOf = <T>(r: unknown): T[] => (Array.isArray(r) ? r : (r as { rows: T[] }).rows);
    const tables = rowsOf<{ schemaname: string; tablename: string }>(
      await t.db.execute(sql`select schemaname, tablename from pg_catalog.pg_tables where schemaname not in ('pg_catalog', 'information_schema')`),
    );
    expect(tables.map((r) => r.tablename)).toEqual(expect.arrayContaining(["vault_versions", "vault_entries", "audit_events", "bundles"]));
    let dump = "";
    for (const { schemaname, tablename } of tables) {
      const rows = rowsOf<{ row: string }>(await t.db.execute(sql.raw(`select t::text as row from "${schemaname}"."${tablename}" t`)));
      dump += rows.map((r) => r.row).join("\n");
    }
    expect(dump).toContain(entryA);
    expect(dump.length).toBeGreaterThan(10_000);
    for (const s of allSecrets()) {
      expect(dump).not.toContain(s);
      expect(dump).not.toContain(Buffer.from(s).toString("base64"));
    }
  });
});
