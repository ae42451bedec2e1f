/**
 * Rotation's safety rails (issue 14), on a real PostgreSQL: make an earlier
 * version current again, end a grace period now, which agents hold which
 * version, and test connection against the real sandbox upstream. Each acts
 * on the entry's own tenant (the row's, never a tenant named by the request),
 * is recorded in the trail, and republishes the live bundle section.
 */
import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents, auditEvents, fleets, fleetServers, vaultVersions } from "@/db/schema";
import { heartbeatInput } from "@/lib/enforcement/heartbeat";
import { recordHeartbeat } from "@/lib/agents/service";
import { activeBundle, publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { createServer, updateServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { endGrace, makeVersionCurrent } from "@/lib/vault/rollback";
import { createEntry, getEntry, resolveCredential, rotateEntry } from "@/lib/vault/service";
import { TEST_CONNECTION_LIMIT, testConnection } from "@/lib/vault/test-connection";
import { entryAgents } from "@/lib/vault/usage";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { freePort, startSandbox, type Sandbox } from "./sandbox";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const ring = [kek];
const K1 = `rails-key-1-${randomBytes(8).toString("hex")}`;
const K2 = `rails-key-2-${randomBytes(8).toString("hex")}`;
const K3 = `rails-key-3-${randomBytes(8).toString("hex")}`;

let t: TestDb;
let sandbox: Sandbox;
let owner: MadeUser;
let adminA: MadeUser;
let adminB: MadeUser;
let auditorA: MadeUser;
let tenantA: string;
let tenantB: string;
let serverId: string;
let fleetId: string;
const agentF = { id: newId("agent"), name: "edge-1" };
const agentOld = { id: newId("agent"), name: "edge-old" };

const liveCredentials = async () => ((await activeBundle(t.db, fleetId))!.content as unknown as BundleContent).credentials ?? [];
const trail = (action: string, entryId: string) =>
  t.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, action), eq(auditEvents.targetId, entryId)));
const newServer = async (upstreamUrl: string, sharedWith: string[] = []) =>
  (await createServer(owner.ctx, createServerInput.parse({ tenantId: tenantA, tenantIds: sharedWith, name: uniq("Rails "), resourceUri: `https://${uniq("rails-")}.example.com/mcp`, upstreamUrl })))!
    .id;
const apiKey = (sid: string, secret: string, tenantId: string | null = tenantA) =>
  createEntry(owner.ctx, { serverId: sid, tenantId, name: uniq("key "), kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret }, kek);

beforeAll(async () => {
  [t, sandbox] = await Promise.all([createTestDb(), startSandbox()]);
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
  auditorA = await makeUser(t.db, { memberships: [[tenantA, "auditor"]] });
  serverId = await newServer(sandbox.url, [tenantB]);
  fleetId = newId("fleet");
  await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
  await t.db.insert(fleetServers).values({ fleetId, serverId });
  await t.db.insert(agents).values([
    { ...agentF, fleetId, keyHash: "x" },
    { ...agentOld, fleetId, keyHash: "x" },
  ]);
  await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
}, 60_000);
afterAll(async () => {
  await Promise.all([t?.close(), sandbox?.stop()]);
});

describe("make this version current again", () => {
  it("restores v1 after a rotation: the replaced version goes to grace, the live bundle names v1, the broker serves v1, the trail records it", async () => {
    const e = await apiKey(serverId, K1);
    await rotateEntry(adminA.ctx, e.id, { secret: K2, graceSeconds: 0 }, kek);
    expect((await liveCredentials()).find((c) => c.entryId === e.id)?.version).toBe(2);
    // v1 was retired at once (grace 0) and is still within the rollback window.
    const before = await getEntry(adminA.ctx, e.id);
    expect(before.versions.find((v) => v.version === 1)).toMatchObject({ status: "retired", cannotRestore: null });
    expect(before.versions.find((v) => v.version === 2)?.cannotRestore).toContain("already the current version");

    const restored = await makeVersionCurrent(adminA.ctx, e.id, { version: 1, replacing: 2, graceSeconds: 600 }, kek);
    expect(restored.currentVersion).toBe(1);
    expect(restored.versions.find((v) => v.version === 1)).toMatchObject({ status: "current", retiredAt: null, graceUntil: null });
    expect(restored.versions.find((v) => v.version === 2)).toMatchObject({ status: "grace" });
    expect((await liveCredentials()).find((c) => c.entryId === e.id)?.version).toBe(1);
    const agent = { id: agentF.id, name: agentF.name, fleetId };
    const got = await resolveCredential(t.db, agent, { serverId, tenantId: tenantA }, ring);
    expect(got).toMatchObject({ version: 1, secret: K1 });
    // The replaced version is in its grace: an agent still naming it gets it, until the grace ends.
    expect((await resolveCredential(t.db, agent, { serverId, tenantId: tenantA, version: 2 }, ring)).secret).toBe(K2);
    const [row] = await trail("vault.make_current", e.id);
    expect(row).toMatchObject({ tenantId: tenantA, actorId: adminA.actor.id });
    expect(row!.before).toMatchObject({ version: 2, restoredWas: "retired" });
    expect(row!.after).toMatchObject({ version: 1, cancelledScheduled: null });
    expect(JSON.stringify(row)).not.toContain(K1);
    expect(JSON.stringify(restored)).not.toContain(K1);
  });

  it("refuses a stale view, the current version, a scheduled one, an unknown one and a retired entry, changing nothing", async () => {
    const e = await apiKey(serverId, K1, tenantB);
    await rotateEntry(owner.ctx, e.id, { secret: K2 }, kek);
    await rotateEntry(owner.ctx, e.id, { secret: K3, activateAt: new Date(Date.now() + 3600_000).toISOString() }, kek);
    const stale = await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 1, replacing: 1 }, kek), "conflict");
    expect(stale.message).toContain("Version 2 is current now, not version 1");
    expect((await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 2, replacing: 2 }, kek), "conflict")).message).toContain("already the current");
    expect((await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 3, replacing: 2 }, kek), "conflict")).message).toContain("scheduled");
    expect((await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 9, replacing: 2 }, kek), "not_found")).message).toContain("Version 9");
    // Bad input names the field, never echoing anything secret.
    const bad = await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 0, replacing: 2, graceSeconds: -1 } as never, kek), "validation_failed");
    expect(bad.issues?.map((i) => i.path).sort()).toEqual(["graceSeconds", "version"]);
    expect((await getEntry(owner.ctx, e.id)).currentVersion).toBe(2);
    expect(await trail("vault.make_current", e.id)).toHaveLength(0);

    // Restoring v1 cancels the pending scheduled v3 (as a rotation now does), and says so in the trail.
    await makeVersionCurrent(owner.ctx, e.id, { version: 1, replacing: 2 }, kek);
    const after = await getEntry(owner.ctx, e.id);
    expect(after.versions.find((v) => v.version === 3)?.status).toBe("retired");
    expect((await trail("vault.make_current", e.id))[0]!.after).toMatchObject({ cancelledScheduled: 3 });
    // The cancelled scheduled version was never current: it cannot be "made current again".
    expect((await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 3, replacing: 1 }, kek), "conflict")).message).toContain("never current");
  });

  it("keeps the rollback window: a version retired more than 30 days ago cannot come back", async () => {
    const e = await apiKey(serverId, K1, null);
    await rotateEntry(owner.ctx, e.id, { secret: K2, graceSeconds: 0 }, kek);
    await t.db
      .update(vaultVersions)
      .set({ retiredAt: new Date(Date.now() - 31 * 86_400_000), activatesAt: new Date(Date.now() - 90 * 86_400_000) })
      .where(and(eq(vaultVersions.entryId, e.id), eq(vaultVersions.version, 1)));
    expect((await getEntry(owner.ctx, e.id)).versions.find((v) => v.version === 1)?.cannotRestore).toContain("more than 30 days ago");
    expect((await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 1, replacing: 2 }, kek), "conflict")).message).toContain("more than 30 days ago");
  });

  it("never sends a version to an origin it was not stored for (origin binding), nor one stored before versions recorded it", async () => {
    const other = await freePort();
    const sid = await newServer(`http://127.0.0.1:${other}/mcp`);
    const e = await apiKey(sid, K1);
    // The upstream moves: v1 is bound to the old origin; re-entering the secret (v2) binds the new one.
    await updateServer(owner.ctx, sid, { upstreamUrl: sandbox.url }, kek);
    await rotateEntry(owner.ctx, e.id, { secret: K2 }, kek);
    const moved = await expectAppError(makeVersionCurrent(owner.ctx, e.id, { version: 1, replacing: 2 }, kek), "conflict");
    expect(moved.message).toContain(`stored for http://127.0.0.1:${other}`);
    expect((await getEntry(owner.ctx, e.id)).currentVersion).toBe(2);

    const legacy = await apiKey(await newServer(sandbox.url), K1);
    await rotateEntry(owner.ctx, legacy.id, { secret: K2 }, kek);
    await t.db
      .update(vaultVersions)
      .set({ boundOrigin: null })
      .where(and(eq(vaultVersions.entryId, legacy.id), eq(vaultVersions.version, 1)));
    expect((await expectAppError(makeVersionCurrent(owner.ctx, legacy.id, { version: 1, replacing: 2 }, kek), "conflict")).message).toContain("before versions recorded");
  });
});

describe("end grace now", () => {
  it("retires the grace version at once: the broker refuses it, the trail records it, the current version is untouched", async () => {
    const e = await apiKey(await newServer(sandbox.url), K1, null);
    await rotateEntry(owner.ctx, e.id, { secret: K2, graceSeconds: 86_400 }, kek);
    const ended = await endGrace(adminA.ctx, e.id, { version: 1 }, kek);
    expect(ended.versions.find((v) => v.version === 1)).toMatchObject({ status: "retired" });
    expect(ended.currentVersion).toBe(2);
    const [row] = await trail("vault.end_grace", e.id);
    expect(row).toMatchObject({ tenantId: tenantA, actorId: adminA.actor.id });
    expect(row!.before).toMatchObject({ version: 1, status: "grace" });
    // Nothing else: ending it again, ending the current version, or an unknown version are refused.
    expect((await expectAppError(endGrace(adminA.ctx, e.id, { version: 1 }, kek), "conflict")).message).toContain("already ended");
    expect((await expectAppError(endGrace(adminA.ctx, e.id, { version: 2 }, kek), "conflict")).message).toContain("current version");
    await expectAppError(endGrace(adminA.ctx, e.id, { version: 7 }, kek), "not_found");
    expect(await trail("vault.end_grace", e.id)).toHaveLength(1);
  });

  it("the broker stops serving the ended version to an agent asking for it by number", async () => {
    const sid = await newServer(sandbox.url);
    await t.db.insert(fleetServers).values({ fleetId, serverId: sid });
    const e = await apiKey(sid, K1);
    await rotateEntry(owner.ctx, e.id, { secret: K2, graceSeconds: 86_400 }, kek);
    const agent = { id: agentF.id, name: agentF.name, fleetId };
    expect((await resolveCredential(t.db, agent, { serverId: sid, tenantId: tenantA, version: 1 }, ring)).secret).toBe(K1);
    await endGrace(owner.ctx, e.id, { version: 1 }, kek);
    await expectAppError(resolveCredential(t.db, agent, { serverId: sid, tenantId: tenantA, version: 1 }, ring), "not_found");
    expect((await resolveCredential(t.db, agent, { serverId: sid, tenantId: tenantA }, ring)).secret).toBe(K2);
  });
});

describe("tenant isolation: the entry's own tenant decides", () => {
  it("another tenant's admin cannot see or act on an entry; a reader cannot act; the shared entry's writer is the server's owner", async () => {
    // A server of tenant A shared with tenant B, with A's own entry and a shared one (managed by A, readable by B).
    const sid = await newServer(sandbox.url, [tenantB]);
    await t.db.insert(fleetServers).values({ fleetId, serverId: sid });
    const shared = await apiKey(sid, K1, null);
    const ownId = (await apiKey(sid, K1, tenantA)).id;
    for (const id of [shared.id, ownId]) await rotateEntry(owner.ctx, id, { secret: K2, graceSeconds: 3600 }, kek);
    expect((await getEntry(adminB.ctx, shared.id)).id).toBe(shared.id);
    await expectAppError(makeVersionCurrent(adminB.ctx, shared.id, { version: 1, replacing: 2 }, kek), "forbidden");
    await expectAppError(endGrace(adminB.ctx, shared.id, { version: 1 }, kek), "forbidden");
    await expectAppError(
      testConnection(adminB.ctx, shared.id, () => ring),
      "forbidden",
    );
    // Tenant A's own entry: tenant B's admin does not even learn it exists; A's auditor may read, not act.
    for (const call of [
      () => makeVersionCurrent(adminB.ctx, ownId, { version: 1, replacing: 2 }, kek),
      () => endGrace(adminB.ctx, ownId, { version: 1 }, kek),
      () => testConnection(adminB.ctx, ownId, () => ring),
      () => entryAgents(adminB.ctx, ownId),
    ])
      await expectAppError(call(), "not_found");
    await expectAppError(makeVersionCurrent(auditorA.ctx, ownId, { version: 1, replacing: 2 }, kek), "forbidden");
    await expectAppError(endGrace(auditorA.ctx, ownId, { version: 1 }, kek), "forbidden");
    await expectAppError(
      testConnection(auditorA.ctx, ownId, () => ring),
      "forbidden",
    );
    expect((await entryAgents(auditorA.ctx, ownId)).items.length).toBeGreaterThan(0);
    // Nothing was changed by the refused calls.
    const v = await getEntry(owner.ctx, ownId);
    expect(v.currentVersion).toBe(2);
    expect(v.versions.find((x) => x.version === 1)?.status).toBe("grace");
    expect(await trail("vault.make_current", ownId)).toHaveLength(0);
    expect(await trail("vault.end_grace", ownId)).toHaveLength(0);
  });
});

describe("which agents use which version", () => {
  it("shows the version each agent reported in its heartbeat, unknown for agents that do not report", async () => {
    const sid = await newServer(sandbox.url);
    await t.db.insert(fleetServers).values({ fleetId, serverId: sid });
    const e = await apiKey(sid, K1);
    await rotateEntry(owner.ctx, e.id, { secret: K2, graceSeconds: 3600 }, kek);
    await recordHeartbeat(t.db, agentF, { version: "1.2.0", bundleRevision: 3, credentials: [{ entryId: e.id, version: 1 }] });
    await recordHeartbeat(t.db, agentOld, { version: "1.0.0", bundleRevision: 3 });
    let used = await entryAgents(adminA.ctx, e.id);
    const by = (id: string) => used.items.find((i) => i.agentId === id)!;
    expect(by(agentF.id)).toMatchObject({ name: "edge-1", fleetId, use: { state: "holds", version: 1, versionStatus: "grace" }, online: true });
    expect(by(agentOld.id).use).toEqual({ state: "unknown" });
    expect(used.byVersion).toMatchObject({ "1": 1, unknown: 1 });
    // The next heartbeat replaces the report: the agent moved to v2.
    await recordHeartbeat(t.db, agentF, { version: "1.2.0", bundleRevision: 4, credentials: [{ entryId: e.id, version: 2 }] });
    used = await entryAgents(adminA.ctx, e.id);
    expect(by(agentF.id).use).toMatchObject({ state: "holds", version: 2, versionStatus: "current" });
    await recordHeartbeat(t.db, agentF, { version: "1.2.0", bundleRevision: 4, credentials: [] });
    used = await entryAgents(adminA.ctx, e.id);
    expect(by(agentF.id).use).toEqual({ state: "not_held" });
  });

  it("the heartbeat contract keeps the field optional and bounded", () => {
    const ok = { version: "1", bundleRevision: 1 };
    expect(heartbeatInput.safeParse(ok).success).toBe(true);
    expect(heartbeatInput.safeParse({ ...ok, credentials: [{ entryId: "vlt_abc", version: 2 }] }).success).toBe(true);
    for (const credentials of [
      [{ entryId: "vlt_abc", version: 0 }],
      [{ entryId: "vlt_abc", version: 1.5 }],
      [{ entryId: "vlt abc", version: 1 }],
      [{ entryId: "vlt_abc", version: 1, secret: "x" }],
      [
        { entryId: "vlt_abc", version: 1 },
        { entryId: "vlt_abc", version: 2 },
      ],
      Array.from({ length: 1001 }, (_, i) => ({ entryId: `vlt_${i}`, version: 1 })),
    ])
      expect(heartbeatInput.safeParse({ ...ok, credentials }).success, JSON.stringify(credentials).slice(0, 80)).toBe(false);
  });
});

describe("test connection", () => {
  it("succeeds with the right key, names a refused credential, DNS, TLS and a closed port, never echoing the secret; recorded in the trail", async () => {
    const res = await fetch(`${sandbox.base}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header: "x-api-key", keys: [K2] }) });
    expect(res.ok).toBe(true);
    try {
      const sid = await newServer(sandbox.url);
      const e = await apiKey(sid, K1);
      const tester = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
      const refused = await testConnection(tester.ctx, e.id, () => ring);
      expect(refused).toMatchObject({ ok: false, failure: "unauthorized", status: 401, version: 1 });
      if (!refused.ok) expect(refused.message).toContain("refused this credential");
      await rotateEntry(owner.ctx, e.id, { secret: K2 }, kek);
      const good = await testConnection(tester.ctx, e.id, () => ring);
      expect(good).toMatchObject({ ok: true, version: 2 });
      if (good.ok) expect(good.toolCount).toBeGreaterThan(0);
      expect(JSON.stringify([refused, good])).not.toMatch(new RegExp(`${K1}|${K2}`));
      const rows = await trail("vault.test_connection", e.id);
      expect(rows).toHaveLength(2);
      expect(JSON.stringify(rows)).not.toMatch(new RegExp(`${K1}|${K2}`));

      const dns = await testConnection(tester.ctx, (await apiKey(await newServer("http://no-such-host.invalid/mcp"), K1)).id, () => ring);
      expect(dns).toMatchObject({ ok: false, failure: "dns" });
      const port = await freePort();
      const closed = await testConnection(tester.ctx, (await apiKey(await newServer(`http://127.0.0.1:${port}/mcp`), K1)).id, () => ring);
      expect(closed).toMatchObject({ ok: false, failure: "connect" });
      // https to the plain-http sandbox: the TLS handshake fails.
      const tls = await testConnection(tester.ctx, (await apiKey(await newServer(sandbox.url.replace("http://", "https://")), K1)).id, () => ring);
      expect(tls).toMatchObject({ ok: false, failure: "tls" });
    } finally {
      await fetch(`${sandbox.base}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header: "x-api-key", keys: [] }) });
    }
  });

  it("says plainly that a per-user entry (brokered or token exchange) cannot be tested without a user, sending nothing upstream and counting no attempt", async () => {
    const sid = await newServer(sandbox.url);
    const oauth = { authorizationUrl: "https://as.example.com/auth", tokenUrl: "https://as.example.com/token", clientId: "mandate", authMethod: "client_secret_basic" as const };
    const brokered = await createEntry(owner.ctx, { serverId: sid, tenantId: tenantA, name: uniq("brokered "), kind: "oauth_user_brokered", oauth, secret: { clientSecret: K3 } }, kek);
    const tester = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
    const err = await expectAppError(
      testConnection(tester.ctx, brokered.id, () => ring),
      "conflict",
    );
    expect(err.message).toContain("each user's own upstream token");
    expect(err.message).not.toContain(K3);
    expect(await trail("vault.test_connection", brokered.id)).toHaveLength(0);
  });

  it(`is limited to ${TEST_CONNECTION_LIMIT} a minute per user, across entries; another user is not affected`, async () => {
    const e = await apiKey(await newServer(sandbox.url), K1);
    const busy = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
    for (let i = 0; i < TEST_CONNECTION_LIMIT; i++) expect((await testConnection(busy.ctx, e.id, () => ring)).ok).toBe(true);
    const limited = await expectAppError(
      testConnection(busy.ctx, e.id, () => ring),
      "rate_limited",
    );
    expect(limited.message).toContain("a minute");
    expect((await testConnection(adminA.ctx, e.id, () => ring)).ok).toBe(true);
  });
});
