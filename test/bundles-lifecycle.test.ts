/**
 * Bundle lifecycle boundaries (issue 10 defects 3 and 4, issue 17 items 4, 5
 * and 6): a rollback never rolls live state back, the tenants a bundle admits
 * and the live sections it carries come from one tenant set, one tenant's
 * failing test holds back only that tenant's part of a draft, the draft diff
 * shows server fields, and two servers one agent would serve at the same
 * address are refused at compile time. Real PostgreSQL, real services.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetServers, fleets, revocations } from "@/db/schema";
import { addTool } from "@/lib/catalog/service";
import { activeBundle, draftBundle, getBundle, publishBundle, rollbackBundle } from "@/lib/bundles/service";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import type { Kek } from "@/lib/bundles/signing";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decide, decisionView } from "@/lib/enforcement/decide";
import { revokeAll } from "@/lib/grants/service";
import { newId } from "@/lib/ids";
import { createMaskingRule } from "@/lib/masking/service";
import { createPolicy, createTest } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput, updateServerInput } from "@/lib/servers/schemas";
import { createServer, updateServer } from "@/lib/servers/service";
import type { Db } from "@/db/client";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("bundle lifecycle", () => {
  let t: TestDb;
  let owner: MadeUser;
  let tenantA: string;
  let tenantB: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantA = (await makeTenant(t.db, owner.actor)).id;
    tenantB = (await makeTenant(t.db, owner.actor)).id;
  });
  afterAll(() => t.close());

  /** A server owned by A (shared with `shared`), with one tool mapped to a scope, in a new fleet of its own. */
  async function setup(shared: string[] = []) {
    const server = (await createServer(
      owner.ctx,
      createServerInput.parse({
        tenantId: tenantA,
        tenantIds: shared,
        name: uniq("srv "),
        resourceUri: `https://${uniq("mcp-")}.lifecycle.example/mcp`,
        upstreamUrl: "https://up.example/mcp",
        scopes: ["tickets:read"],
      }),
    ))!;
    await addTool(owner.ctx, server.id, { name: "get_ticket", description: "get", inputSchema: { type: "object", properties: { id: { type: "string" } } }, annotations: {}, risk: "low" });
    await putScopeMapping(owner.ctx, server.id, { baseVersion: 0, mapping: { "tickets:read": ["get_ticket"] } });
    const fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
    await t.db.insert(fleetServers).values({ fleetId, serverId: server.id });
    return { serverId: server.id, fleetId };
  }

  const live = async (fleetId: string) => (await activeBundle(t.db, fleetId))!.content as unknown as BundleContent;
  const admitted = (c: BundleContent, serverId: string) => c.servers.find((s) => s.id === serverId)?.tenantIds ?? [];
  /** What an agent enforcing `c` decides for a call of `user` in `tenantId` holding the mapped scope. */
  const call = (c: BundleContent, serverId: string, tenantId: string, user: string) => {
    const now = Math.floor(Date.now() / 1000);
    return decide(decisionView(c), {
      method: "tools/call",
      serverId,
      tool: "get_ticket",
      principal: { issuer: "https://issuer.lifecycle.example", tenantId, user, client: "c", scopes: ["tickets:read"], groups: [], actors: [], iat: now - 3600, exp: now + 3600 },
      args: {},
    });
  };

  /**
   * The invariant behind defect 10.4: every tenant a bundle admits on a server
   * carries each of its revocations for that server (the latest cut-off at least).
   */
  async function expectRevocationsOfAdmitted(db: Db, c: BundleContent) {
    const rows = await db.select().from(revocations);
    for (const s of c.servers) {
      for (const tenant of s.tenantIds) {
        for (const r of rows.filter((x) => x.tenantId === tenant && (x.serverId === null || x.serverId === s.id))) {
          const held = c.revocations.find((x) => x.tenantId === r.tenantId && x.user === (r.userId ?? undefined) && x.client === (r.clientId ?? undefined) && x.serverId === (r.serverId ?? undefined));
          expect(held, `revocation ${r.id} of admitted tenant ${tenant} on ${s.id}`).toBeDefined();
          expect(held!.before >= r.before.toISOString()).toBe(true);
        }
      }
    }
  }

  it("a rollback restores policies but never live state: revocations and masking made since stay", async () => {
    const { serverId, fleetId } = await setup();
    const r1 = await publishBundle(owner.ctx, fleetId, { note: "first" }, kek);
    const b1 = await getBundle(owner.ctx, fleetId, r1.revision);
    await createPolicy(owner.ctx, {
      tenantId: tenantA,
      serverId,
      name: "readers",
      description: "",
      kind: "cedar",
      cedar: `permit (principal in Group::"readers", action, resource == Tool::"${serverId}/get_ticket");`,
      enabled: true,
    });
    await publishBundle(owner.ctx, fleetId, { note: "second" }, kek);
    await revokeAll(owner.ctx, { tenantId: tenantA, userId: "mallory", reason: "left" }, kek);
    await createMaskingRule(owner.ctx, serverId, { tool: "get_ticket", paths: ["id"], mode: "hash" }, kek);
    const before = await live(fleetId);
    expect(before.revocations.map((r) => r.user)).toEqual(["mallory"]);

    const rb = await rollbackBundle(owner.ctx, fleetId, r1.revision, kek);
    const after = (await getBundle(owner.ctx, fleetId, rb.revision)).content;
    // Policies are those of revision 1 ...
    expect(after.cedar.policies).toEqual(b1.content.cedar.policies);
    expect(Object.values(after.policies).map((p) => p.name)).not.toContain("readers");
    // ... the live state is today's: the revocation and the masking rule made since revision 1 hold.
    expect(after.revocations).toEqual(before.revocations);
    expect(after.masking).toEqual(before.masking);
    expect(after.masking).toHaveLength(1);
    expect(after.manifest).toMatchObject({ revision: rb.revision, parentRevision: before.manifest.revision });
  });

  it("unsharing a server stops admitting the tenant at once, and no bundle ever admits it without its revocations", async () => {
    const { serverId, fleetId } = await setup([tenantB]);
    const r1 = await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    expect(admitted(await live(fleetId), serverId)).toEqual([tenantA, tenantB]);
    await revokeAll(owner.ctx, { tenantId: tenantB, userId: "bob", serverId, reason: "" }, kek);
    expect((await live(fleetId)).revocations.filter((r) => r.tenantId === tenantB).map((r) => r.user)).toEqual(["bob"]);

    await updateServer(owner.ctx, serverId, updateServerInput.parse({ tenantIds: [] }), kek);
    const unshared = await live(fleetId);
    expect(admitted(unshared, serverId)).toEqual([tenantA]);
    await expectRevocationsOfAdmitted(t.db, unshared);
    // B's tokens are refused: the tenant is no longer admitted (an A user still passes).
    expect(call(unshared, serverId, tenantB, "bob")).toMatchObject({ decision: "deny", stage: "server" });
    expect(call(unshared, serverId, tenantB, "carol")).toMatchObject({ decision: "deny", stage: "server" });
    expect(call(unshared, serverId, tenantA, "al").decision).toBe("allow");

    // A live-only republish (a revocation in A) keeps B out: it never admits B with B's revocations gone.
    await revokeAll(owner.ctx, { tenantId: tenantA, userId: "eve", serverId, reason: "" }, kek);
    const later = await live(fleetId);
    expect(admitted(later, serverId)).toEqual([tenantA]);
    await expectRevocationsOfAdmitted(t.db, later);
    expect(call(later, serverId, tenantB, "bob")).toMatchObject({ decision: "deny", stage: "server" });

    // Rolling back to the revision that admitted B does not bring B back either.
    await rollbackBundle(owner.ctx, fleetId, r1.revision, kek);
    const rolled = await live(fleetId);
    expect(admitted(rolled, serverId)).toEqual([tenantA]);
    await expectRevocationsOfAdmitted(t.db, rolled);
    expect(call(rolled, serverId, tenantB, "bob").decision).toBe("deny");

    // Re-sharing admits B only at the next publish, with B's revocation still in force.
    await updateServer(owner.ctx, serverId, updateServerInput.parse({ tenantIds: [tenantB] }), kek);
    expect(admitted(await live(fleetId), serverId)).toEqual([tenantA]);
    await publishBundle(owner.ctx, fleetId, { note: "re-shared" }, kek);
    const reshared = await live(fleetId);
    expect(admitted(reshared, serverId)).toEqual([tenantA, tenantB]);
    await expectRevocationsOfAdmitted(t.db, reshared);
    expect(reshared.revocations.find((r) => r.tenantId === tenantB)?.user).toBe("bob");
  });

  it("removing a server from a fleet drops it from the live bundle together with its tenants' live sections", async () => {
    const { serverId, fleetId } = await setup([tenantB]);
    const other = await setup();
    await t.db.insert(fleetServers).values({ fleetId, serverId: other.serverId });
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    await revokeAll(owner.ctx, { tenantId: tenantB, userId: "bob2", serverId, reason: "" }, kek);
    await t.db.delete(fleetServers).where(eq(fleetServers.serverId, serverId));
    // The next live republish (for the other server) must not keep serving the removed server without B's revocation.
    await revokeAll(owner.ctx, { tenantId: tenantA, userId: "eve2", serverId: other.serverId, reason: "" }, kek);
    const c = await live(fleetId);
    expect(c.servers.map((s) => s.id)).toEqual([other.serverId]);
    expect(c.catalogue.every((x) => x.serverId === other.serverId)).toBe(true);
    await expectRevocationsOfAdmitted(t.db, c);
  });

  it("one tenant's failing test holds back that tenant's policies only; the other tenant's change is published", async () => {
    const { serverId, fleetId } = await setup([tenantB]);
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    const before = await live(fleetId);
    // B: a forbid with a test that fails against it.
    await createPolicy(owner.ctx, {
      tenantId: tenantB,
      serverId,
      name: "B no tickets",
      description: "",
      kind: "rule",
      rule: { effect: "forbid", actions: ["call_tool"], tools: ["get_ticket"], principals: { users: [], groups: [] }, clients: [], conditions: [] },
      enabled: true,
    });
    await createTest(owner.ctx, {
      tenantId: tenantB,
      serverId,
      name: "B readers read",
      expected: "allow",
      request: { user: "bob", groups: [], client: "c", scopes: ["tickets:read"], tool: "get_ticket", action: "call_tool", args: {} },
    });
    // A: an unrelated change with a passing test.
    await createPolicy(owner.ctx, {
      tenantId: tenantA,
      serverId,
      name: "A readers",
      description: "",
      kind: "cedar",
      cedar: `permit (principal in Group::"readers", action, resource == Tool::"${serverId}/get_ticket");`,
      enabled: true,
    });
    await createTest(owner.ctx, {
      tenantId: tenantA,
      serverId,
      name: "A readers read",
      expected: "allow",
      request: { user: "al", groups: ["readers"], client: "c", scopes: [], tool: "get_ticket", action: "call_tool", args: {} },
    });

    const draft = await draftBundle(owner.ctx, fleetId);
    expect(draft.blockers).toEqual([]);
    expect(draft.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    expect(draft.heldBack[0]!.problems.join("\n")).toMatch(/B readers read/);

    const pub = await publishBundle(owner.ctx, fleetId, { note: "A only" }, kek);
    expect(pub.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    const c = await live(fleetId);
    const names = Object.values(c.policies).map((p) => p.name);
    expect(names).toContain("A readers");
    expect(names).not.toContain("B no tickets");
    // B's part is exactly the live revision's.
    const partOf = (x: BundleContent, tenant: string) => Object.entries(x.cedar.policies).filter(([id]) => x.policies[id]?.tenantId === tenant);
    expect(partOf(c, tenantB)).toEqual(partOf(before, tenantB));
    expect(admitted(c, serverId)).toEqual([tenantA, tenantB]);
  });

  it("a held-back owner keeps its server's definition, scope mappings and catalogue at the live revision; another tenant's server change goes out", async () => {
    const { serverId, fleetId } = await setup();
    const serverB = (await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId: tenantB, name: uniq("srv B "), resourceUri: `https://${uniq("mcp-b-")}.lifecycle.example/mcp`, upstreamUrl: "https://up-b.example/mcp", scopes: ["b:read"] }),
    ))!;
    await addTool(owner.ctx, serverB.id, { name: "b_tool", description: "b", inputSchema: { type: "object", properties: {} }, annotations: {}, risk: "low" });
    await t.db.insert(fleetServers).values({ fleetId, serverId: serverB.id });
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    const before = await live(fleetId);

    // A widens its own mapping to a new high-risk tool and moves its upstream; A's own test catches the widening.
    await addTool(owner.ctx, serverId, { name: "refund", description: "refund", inputSchema: { type: "object", properties: { amount: { type: "integer" } } }, annotations: {}, risk: "high" });
    await putScopeMapping(owner.ctx, serverId, { baseVersion: 1, mapping: { "tickets:read": ["get_ticket", "refund"] } });
    await updateServer(owner.ctx, serverId, updateServerInput.parse({ upstreamUrl: "https://elsewhere.example/mcp" }), kek);
    await createTest(owner.ctx, {
      tenantId: tenantA,
      serverId,
      name: "readers cannot refund",
      expected: "deny",
      request: { user: "al", groups: [], client: "c", scopes: ["tickets:read"], tool: "refund", action: "call_tool", args: { amount: 5 } },
    });
    // B changes its own server meanwhile.
    await createPolicy(owner.ctx, {
      tenantId: tenantB,
      serverId: serverB.id,
      name: "B readers",
      description: "",
      kind: "cedar",
      cedar: `permit (principal in Group::"readers", action, resource == Tool::"${serverB.id}/b_tool");`,
      enabled: true,
    });

    const pub = await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    expect(pub.heldBack.map((h) => h.tenantId)).toEqual([tenantA]);
    const c = await live(fleetId);
    const sA = (x: BundleContent) => x.servers.find((s) => s.id === serverId)!;
    expect(sA(c).upstreamUrl).toBe(sA(before).upstreamUrl);
    expect(c.catalogue.filter((x) => x.serverId === serverId).map((x) => x.name)).toEqual(["get_ticket"]);
    const scopeOf = (x: BundleContent) => Object.entries(x.cedar.policies).filter(([id]) => x.policies[id]?.kind === "scope" && x.policies[id]?.serverId === serverId);
    expect(scopeOf(c)).toEqual(scopeOf(before));
    expect(Object.values(c.policies).map((p) => p.name)).toContain("B readers");
  });

  it("a held-back tenant whose published policy no longer fits the server is left unadmitted there; nobody else is blocked", async () => {
    const { serverId, fleetId } = await setup([tenantB]);
    await createPolicy(owner.ctx, {
      tenantId: tenantB,
      serverId,
      name: "B no secret",
      description: "",
      kind: "cedar",
      cedar: `forbid (principal, action, resource) when { context.args has id && context.args.id == "secret" };`,
      enabled: true,
    });
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    expect(admitted(await live(fleetId), serverId)).toEqual([tenantA, tenantB]);
    // The owner adds a tool whose `id` is an integer: `id` is no longer usable in this server's policies.
    await addTool(owner.ctx, serverId, { name: "other", description: "other", inputSchema: { type: "object", properties: { id: { type: "integer" } } }, annotations: {}, risk: "low" });
    const draft = await draftBundle(owner.ctx, fleetId);
    expect(draft.blockers).toEqual([]);
    expect(draft.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    expect(draft.heldBack[0]!.problems.join("\n")).toMatch(/not admitted on server/);
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    const c = await live(fleetId);
    expect(admitted(c, serverId)).toEqual([tenantA]);
    expect(c.catalogue.map((x) => x.name)).toEqual(["get_ticket", "other"]);
    expect(Object.values(c.policies).map((p) => p.name)).not.toContain("B no secret");
  });

  it("a held-back tenant that was not admitted before stays unadmitted", async () => {
    const { serverId, fleetId } = await setup();
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    await updateServer(owner.ctx, serverId, updateServerInput.parse({ tenantIds: [tenantB] }), kek);
    await createTest(owner.ctx, {
      tenantId: tenantB,
      serverId,
      name: "B fails",
      expected: "allow",
      request: { user: "bob", groups: [], client: "c", scopes: [], tool: "get_ticket", action: "call_tool", args: {} },
    });
    const pub = await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    expect(pub.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    expect(admitted(await live(fleetId), serverId)).toEqual([tenantA]);
  });

  it("the draft diff shows a server's upstream, resource URI and tenants field by field", async () => {
    const { serverId, fleetId } = await setup();
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    const oldUri = (await live(fleetId)).servers[0]!.resourceUri;
    const newUri = `https://${uniq("moved-")}.lifecycle.example/mcp`;
    await updateServer(owner.ctx, serverId, updateServerInput.parse({ upstreamUrl: "https://attacker.example/mcp", resourceUri: newUri, tenantIds: [tenantB] }), kek);
    const draft = await draftBundle(owner.ctx, fleetId);
    const changed = draft.diff.servers.changed.find((s) => s.id === serverId)!;
    const field = (name: string) => changed.fields.find((f) => f.field === name);
    expect(field("upstreamUrl")).toEqual({ field: "upstreamUrl", before: "https://up.example/mcp", after: "https://attacker.example/mcp" });
    expect(field("resourceUri")).toEqual({ field: "resourceUri", before: oldUri, after: newUri });
    expect(field("tenantIds")).toEqual({ field: "tenantIds", before: [tenantA].join(", "), after: [tenantA, tenantB].join(", ") });
    expect(field("name")).toBeUndefined();
  });

  it("refuses two servers one agent would serve at the same address, naming both", async () => {
    const a = await setup();
    const b = await setup();
    await t.db.insert(fleetServers).values({ fleetId: a.fleetId, serverId: b.serverId });
    // Same host and path, another port: one agent routes both to one address.
    const draft0 = await draftBundle(owner.ctx, a.fleetId);
    const sa = draft0.content.servers.find((s) => s.id === a.serverId)!;
    const host = new URL(sa.resourceUri).hostname;
    await updateServer(owner.ctx, b.serverId, updateServerInput.parse({ resourceUri: `https://${host}:8443/mcp` }), kek);
    const err = await expectAppError(publishBundle(owner.ctx, a.fleetId, { note: "" }, kek), "validation_failed");
    const msg = err.issues!.map((i) => i.message).join("\n");
    expect(msg).toMatch(new RegExp(`${a.serverId}|${sa.name}`));
    expect(msg).toMatch(/same address/);
  });

  it("the compiler reports a duplicate address as an issue naming both servers (pure)", () => {
    const server = (id: string, uri: string): RegistrySnapshot["servers"][number] => ({
      id,
      name: `name ${id}`,
      tenantId: "ten_a",
      tenantIds: ["ten_a"],
      resourceUri: uri,
      upstreamUrl: "https://up.example/mcp",
      scopes: [],
      issuers: [],
      trust: [],
      prm: { resource: uri, authorization_servers: [], scopes_supported: [], bearer_methods_supported: ["header"] },
      tools: [],
      mapping: {},
    });
    const manifest = { fleetId: "flt_x", revision: 1, parentRevision: null, createdAt: new Date().toISOString() };
    const ok = compileBundle(
      { servers: [server("srv_1", "https://a.example/one"), server("srv_2", "https://a.example/two"), server("srv_3", "https://b.example/one")], policies: [], tests: [] },
      manifest,
    );
    expect(ok.issues).toEqual([]);
    const bad = compileBundle({ servers: [server("srv_1", "https://a.example/one"), server("srv_2", "http://a.example:8080/one")], policies: [], tests: [] }, manifest);
    expect(bad.issues).toHaveLength(1);
    expect(bad.issues[0]!.message).toMatch(/srv_1/);
    expect(bad.issues[0]!.message).toMatch(/srv_2/);
  });
});
