import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { count, eq } from "drizzle-orm";
import { auditEvents, fleetServers, fleets, grants, oauthClients, revocations } from "@/db/schema";
import { activeBundle, publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { learnFromDecisions, type LearnRow } from "@/lib/grants/learn";
import {
  approveClient,
  blockClient,
  importGrants,
  importGrantsInput,
  listClients,
  listGrants,
  listRevocations,
  refreshClientMetadata,
  resetClient,
  revokeClient,
  revokeGrant,
  revokeUser,
  setClientApproval,
} from "@/lib/grants/service";
import { newId } from "@/lib/ids";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

let t: TestDb;
let owner: MadeUser;
let admin: MadeUser;
let auditor: MadeUser;
let adminB: MadeUser;
let tenantA: string;
let tenantB: string;
let serverA: string;
let serverA2: string;
let fleetId: string;

const at = (iso: string) => new Date(iso);
const row = (o: Partial<LearnRow> & { at: Date }): LearnRow => ({
  tenantId: tenantA,
  serverId: serverA,
  userId: "alice",
  clientId: "client-1",
  scopes: [],
  outcome: "allow",
  ...o,
});

async function liveContent(): Promise<BundleContent & { manifest: { revision: number } }> {
  const b = await activeBundle(t.db, fleetId);
  if (!b) throw new Error("no live bundle");
  return b.content as unknown as BundleContent & { manifest: { revision: number } };
}

async function counts() {
  const [[g], [r], [e]] = await Promise.all([
    t.db.select({ n: count() }).from(grants).where(eq(grants.tenantId, tenantA)),
    t.db.select({ n: count() }).from(revocations),
    t.db.select({ n: count() }).from(auditEvents),
  ]);
  return { grants: g!.n, revocations: r!.n, events: e!.n };
}

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  admin = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  auditor = await makeUser(t.db, { memberships: [[tenantA, "auditor"]] });
  adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
  serverA = (await makeServer(admin.ctx, tenantA))!.id;
  serverA2 = (await makeServer(admin.ctx, tenantA))!.id;
  fleetId = newId("fleet");
  await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
  await t.db.insert(fleetServers).values([
    { fleetId, serverId: serverA },
    { fleetId, serverId: serverA2 },
  ]);
  await publishBundle(owner.ctx, fleetId, { note: "first" }, kek);
});
afterAll(() => t.close());

describe("learning grants from decisions", () => {
  it("aggregates a batch, sums calls over batches, unions scopes and keeps first/last seen", async () => {
    await learnFromDecisions(t.db, [
      row({ at: at("2026-11-01T10:00:00.000Z"), scopes: ["tickets:read"] }),
      row({ at: at("2026-11-01T09:00:00.000Z"), scopes: ["tickets:read"] }),
      row({ at: at("2026-11-01T11:00:00.000Z"), scopes: [], outcome: "deny" }), // client seen, not a use of the grant
      row({ at: at("2026-11-01T10:30:00.000Z"), userId: "bob", scopes: ["a"] }),
      row({ at: at("2026-11-01T10:30:00.000Z"), userId: null }), // no user: skipped
      row({ at: at("2026-11-01T10:30:00.000Z"), tenantId: "ten_gone", userId: "ghost" }), // unknown tenant: skipped, batch not failed
      row({ at: at("2026-11-01T10:30:00.000Z"), serverId: "srv_gone", userId: "ghost" }), // unknown server: skipped
    ]);
    await learnFromDecisions(t.db, [row({ at: at("2026-11-02T08:00:00.000Z"), scopes: ["tickets:write"] }), row({ at: at("2026-10-30T08:00:00.000Z"), scopes: ["tickets:read"] })]);
    const all = await t.db.select().from(grants).where(eq(grants.tenantId, tenantA));
    expect(all.map((g) => g.userId).sort()).toEqual(["alice", "bob"]);
    const alice = all.find((g) => g.userId === "alice")!;
    expect(alice.calls).toBe(4);
    expect(alice.scopes).toEqual(["tickets:read", "tickets:write"]);
    expect(alice.firstSeenAt!.toISOString()).toBe("2026-10-30T08:00:00.000Z");
    expect(alice.lastSeenAt!.toISOString()).toBe("2026-11-02T08:00:00.000Z");
    expect(alice.source).toBe("learned");
    const clients = await t.db.select().from(oauthClients);
    expect(clients.map((c) => [c.tenantId, c.clientId])).toEqual([[tenantA, "client-1"]]);
    expect(clients[0]!.lastSeenAt!.toISOString()).toBe("2026-11-02T08:00:00.000Z"); // the denied call counts for the client
    expect(clients[0]!.firstSeenAt!.toISOString()).toBe("2026-10-30T08:00:00.000Z");
    expect(clients[0]!.registration).toBe("unknown");
  });

  it("guesses metadata-document registration for https client ids, and ignores an empty batch", async () => {
    await learnFromDecisions(t.db, []);
    await learnFromDecisions(t.db, [row({ at: at("2026-11-03T08:00:00.000Z"), clientId: "https://app.example/client.json", userId: "carol" })]);
    const [c] = await t.db.select().from(oauthClients).where(eq(oauthClients.clientId, "https://app.example/client.json"));
    expect(c!.registration).toBe("metadata_document");
  });

  it("lists grants newest-used first, keyset-paged, with filters", async () => {
    const p1 = await listGrants(admin.ctx, { tenantId: tenantA, limit: 2 });
    expect(p1.items.map((g) => g.userId)).toEqual(["carol", "alice"]);
    expect(p1.items[1]).toMatchObject({ calls: 4, status: "active", serverId: serverA, clientId: "client-1" });
    expect(p1.nextCursor).toBeTruthy();
    const p2 = await listGrants(admin.ctx, { tenantId: tenantA, limit: 2, cursor: p1.nextCursor! });
    expect(p2.items.map((g) => g.userId)).toEqual(["bob"]);
    expect(p2.nextCursor).toBeNull();
    expect((await listGrants(admin.ctx, { userId: "bob", limit: 50 })).items).toHaveLength(1);
    expect((await listGrants(adminB.ctx, { limit: 50 })).items).toHaveLength(0);
    expect((await listGrants(adminB.ctx, { tenantId: tenantA, limit: 50 })).items).toHaveLength(0);
    await expectAppError(listGrants(admin.ctx, { limit: 5, cursor: "garbage" }), "validation_failed");
  });
});

describe("revocation", () => {
  it("revokes a grant: revocations row, grant revokedAt, new live revision with the cut-off, trail", async () => {
    const [alice] = await t.db.select().from(grants).where(eq(grants.userId, "alice"));
    const before = await liveContent();
    const started = Date.now();
    const out = await revokeGrant(admin.ctx, alice!.id, { reason: "laptop stolen" }, kek);
    expect(out.grantsRevoked).toBe(1);
    const [g] = await t.db.select().from(grants).where(eq(grants.id, alice!.id));
    expect(g!.revokedAt).not.toBeNull();
    expect(g!.revokedBy).toBe(admin.actor.label);
    const [r] = await t.db.select().from(revocations).where(eq(revocations.grantId, alice!.id));
    expect(r).toMatchObject({ tenantId: tenantA, serverId: serverA, userId: "alice", clientId: "client-1", reason: "laptop stolen", upstreamRevocation: { status: "not_configured" } });
    expect(r!.before.getTime()).toBeGreaterThanOrEqual(started);
    expect(r!.before.getTime()).toBe(g!.revokedAt!.getTime());
    const after = await liveContent();
    expect(after.manifest.revision).toBe(before.manifest.revision + 1);
    expect(after.revocations).toContainEqual({ tenantId: tenantA, user: "alice", client: "client-1", serverId: serverA, before: r!.before.toISOString() });
    const events = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, alice!.id));
    expect(events.map((e) => e.action)).toContain("grant.revoke");
    const history = await listRevocations(auditor.ctx, { tenantId: tenantA, limit: 10 });
    expect(history.items[0]).toMatchObject({ grantId: alice!.id, serverId: serverA, serverName: expect.stringMatching(/^Server /), reason: "laptop stolen", createdBy: admin.actor.label });
    const listed = await listGrants(auditor.ctx, { tenantId: tenantA, userId: "alice", limit: 5 });
    expect(listed.items[0]).toMatchObject({ status: "revoked", revokedAt: r!.before.toISOString() });
  });

  it("refuses to revoke twice with 409 and changes nothing", async () => {
    const [alice] = await t.db.select().from(grants).where(eq(grants.userId, "alice"));
    const rev = (await liveContent()).manifest.revision;
    const c0 = await counts();
    const err = await expectAppError(revokeGrant(admin.ctx, alice!.id, { reason: "again" }, kek), "conflict");
    expect(err.message).toMatch(/already revoked at .* nothing changed/);
    expect(await counts()).toEqual(c0);
    expect((await liveContent()).manifest.revision).toBe(rev);
  });

  it("revokes every grant of a user, and of a client, across the tenant's servers", async () => {
    await learnFromDecisions(t.db, [
      row({ at: new Date(), userId: "dave", serverId: serverA }),
      row({ at: new Date(), userId: "dave", serverId: serverA2 }),
      row({ at: new Date(), userId: "erin", clientId: "client-2", serverId: serverA2 }),
      row({ at: new Date(), userId: "frank", clientId: "client-2", serverId: serverA }),
    ]);
    const rev0 = (await liveContent()).manifest.revision;
    const byUser = await revokeUser(admin.ctx, tenantA, "dave", { reason: "left the company" }, kek);
    expect(byUser.grantsRevoked).toBe(2);
    expect(byUser.revocation).toMatchObject({ userId: "dave", clientId: null, serverId: null });
    let live = await liveContent();
    expect(live.manifest.revision).toBe(rev0 + 1);
    expect(live.revocations).toContainEqual({ tenantId: tenantA, user: "dave", before: byUser.revocation.before });

    const byClient = await revokeClient(admin.ctx, tenantA, "client-2", { serverId: serverA2, reason: "compromised" }, kek);
    expect(byClient.grantsRevoked).toBe(1); // only erin's grant is on serverA2
    const frank = await t.db.select().from(grants).where(eq(grants.userId, "frank"));
    expect(frank[0]!.revokedAt).toBeNull();
    live = await liveContent();
    expect(live.revocations).toContainEqual({ tenantId: tenantA, client: "client-2", serverId: serverA2, before: byClient.revocation.before });
    await expectAppError(revokeUser(admin.ctx, tenantA, "dave", { serverId: "srv_nope" }, kek), "validation_failed");
  });

  it("isolates tenants (404) and refuses writes to auditors (403), changing nothing", async () => {
    const [bob] = await t.db.select().from(grants).where(eq(grants.userId, "bob"));
    const [client] = await t.db.select().from(oauthClients).where(eq(oauthClients.clientId, "client-1"));
    const c0 = await counts();
    await expectAppError(revokeGrant(adminB.ctx, bob!.id, { reason: "" }, kek), "not_found");
    await expectAppError(approveClient(adminB.ctx, client!.id, kek), "not_found");
    await expectAppError(listClients(adminB.ctx, tenantA), "not_found");
    await expectAppError(revokeUser(adminB.ctx, tenantA, "bob", {}, kek), "not_found");
    await expectAppError(revokeGrant(auditor.ctx, bob!.id, { reason: "" }, kek), "forbidden");
    await expectAppError(approveClient(auditor.ctx, client!.id, kek), "forbidden");
    await expectAppError(setClientApproval(auditor.ctx, tenantA, true, kek), "forbidden");
    await expectAppError(importGrants(auditor.ctx, importGrantsInput.parse({ tenantId: tenantA, grants: [{ serverId: serverA, userId: "x", clientId: "y" }] })), "forbidden");
    expect(await counts()).toEqual(c0);
    expect((await listClients(auditor.ctx, tenantA)).items.length).toBeGreaterThan(0);
  });
});

describe("clients", () => {
  it("approval toggles the live bundle's clientApproval and approvedClients", async () => {
    const [client] = await t.db.select().from(oauthClients).where(eq(oauthClients.clientId, "client-1"));
    let live = await liveContent();
    expect(live.clientApproval ?? []).not.toContain(tenantA);
    await setClientApproval(admin.ctx, tenantA, true, kek);
    live = await liveContent();
    expect(live.clientApproval).toContain(tenantA);
    expect(live.approvedClients).not.toContainEqual({ tenantId: tenantA, clientId: "client-1" });

    const approved = await approveClient(admin.ctx, client!.id, kek);
    expect(approved).toMatchObject({ status: "approved", decidedBy: admin.actor.label });
    live = await liveContent();
    expect(live.approvedClients).toContainEqual({ tenantId: tenantA, clientId: "client-1" });
    const err = await expectAppError(approveClient(admin.ctx, client!.id, kek), "conflict");
    expect(err.message).toMatch(/already approved/);

    await blockClient(admin.ctx, client!.id, kek);
    live = await liveContent();
    expect(live.approvedClients).not.toContainEqual({ tenantId: tenantA, clientId: "client-1" });
    expect((await resetClient(admin.ctx, client!.id, kek)).status).toBe("pending");

    const rev = live.manifest.revision;
    await setClientApproval(admin.ctx, tenantA, false, kek);
    live = await liveContent();
    expect(live.clientApproval ?? []).not.toContain(tenantA);
    expect(live.manifest.revision).toBeGreaterThan(rev);
    expect((await listClients(admin.ctx, tenantA)).requireClientApproval).toBe(false);
  });

  it("fetches a client ID metadata document from a real local server and validates it", async () => {
    const docs = new Map<string, { status: number; body: string }>();
    const srv: HttpServer = createHttpServer((req, res) => {
      const d = docs.get(req.url ?? "") ?? { status: 404, body: "{}" };
      res.writeHead(d.status, { "content-type": "application/json" });
      res.end(d.body);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const good = `${base}/good.json`;
      const liar = `${base}/liar.json`;
      const huge = `${base}/huge.json`;
      docs.set("/good.json", { status: 200, body: JSON.stringify({ client_id: good, client_name: "Good Client", redirect_uris: ["http://127.0.0.1:3000/callback"] }) });
      docs.set("/liar.json", { status: 200, body: JSON.stringify({ client_id: "https://evil.example/x", client_name: "Liar" }) });
      docs.set("/huge.json", { status: 200, body: JSON.stringify({ client_id: huge, client_name: "x".repeat(70 * 1024) }) });
      await learnFromDecisions(
        t.db,
        [good, liar, huge].map((clientId) => row({ at: new Date(), clientId, userId: "meta" })),
      );
      const byId = async (clientId: string) => (await t.db.select().from(oauthClients).where(eq(oauthClients.clientId, clientId)))[0]!;

      const stored = await refreshClientMetadata(admin.ctx, (await byId(good)).id);
      expect(stored).toMatchObject({ name: "Good Client", redirectUris: ["http://127.0.0.1:3000/callback"], registration: "metadata_document" });

      const e1 = await expectAppError(refreshClientMetadata(admin.ctx, (await byId(liar)).id), "upstream_error");
      expect(e1.message).toMatch(/client_id does not equal its URL/);
      expect((await byId(liar)).name).toBe("");
      const e2 = await expectAppError(refreshClientMetadata(admin.ctx, (await byId(huge)).id), "upstream_error");
      expect(e2.message).toMatch(/larger than 64 KiB/);
      const plain = await byId("client-1");
      await expectAppError(refreshClientMetadata(admin.ctx, plain.id), "bad_request");
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});

describe("import", () => {
  it("rejects a file with a bad row, naming it, and stores nothing", async () => {
    const c0 = await counts();
    const err = await expectAppError(
      importGrants(
        admin.ctx,
        importGrantsInput.parse({
          tenantId: tenantA,
          grants: [
            { serverId: serverA, userId: "gina", clientId: "client-3", scopes: ["a"] },
            { serverId: "srv_not_ours", userId: "gina", clientId: "client-3" },
          ],
        }),
      ),
      "validation_failed",
    );
    expect(err.issues).toEqual([{ path: "grants.1.serverId", message: expect.stringMatching(/^row 2: unknown server/) }]);
    expect(await counts()).toEqual(c0);
    expect(importGrantsInput.safeParse({ tenantId: tenantA, grants: [{ serverId: serverA, userId: "", clientId: "c" }] }).success).toBe(false);
    expect(importGrantsInput.safeParse({ tenantId: tenantA, grants: Array.from({ length: 5001 }, () => ({ serverId: serverA, userId: "u", clientId: "c" })) }).success).toBe(false);
    // Tenant B cannot import into A, nor name A's server.
    await expectAppError(importGrants(adminB.ctx, importGrantsInput.parse({ tenantId: tenantA, grants: [{ serverId: serverA, userId: "u", clientId: "c" }] })), "not_found");
    await expectAppError(importGrants(adminB.ctx, importGrantsInput.parse({ tenantId: tenantB, grants: [{ serverId: serverA, userId: "u", clientId: "c" }] })), "validation_failed");
  });

  it("imports grants as 'imported', merging with learned ones", async () => {
    const out = await importGrants(
      admin.ctx,
      importGrantsInput.parse({
        tenantId: tenantA,
        grants: [
          { serverId: serverA, userId: "gina", clientId: "client-3", scopes: ["a"], grantedAt: "2026-10-01T00:00:00Z" },
          { serverId: serverA, userId: "bob", clientId: "client-1", scopes: ["z"], grantedAt: "2026-01-01T00:00:00Z" },
        ],
      }),
    );
    expect(out).toEqual({ received: 2, created: 1, updated: 1 });
    const [gina] = await t.db.select().from(grants).where(eq(grants.userId, "gina"));
    expect(gina).toMatchObject({ source: "imported", scopes: ["a"], calls: 0, clientId: "client-3" });
    expect(gina!.firstSeenAt!.toISOString()).toBe("2026-10-01T00:00:00.000Z");
    const [bob] = await t.db.select().from(grants).where(eq(grants.userId, "bob"));
    expect(bob).toMatchObject({ source: "learned", scopes: ["a", "z"] });
    expect(bob!.firstSeenAt!.toISOString()).toBe("2026-01-01T00:00:00.000Z");
    expect((await t.db.select().from(oauthClients).where(eq(oauthClients.clientId, "client-3"))).length).toBe(1);
    const [ev] = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "grants.import"));
    expect(ev!.after).toEqual(out);
  });
});
