import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, count, eq, notExists, sql } from "drizzle-orm";
import { auditEvents, serverTenants, servers } from "@/db/schema";
import { createServer, deleteServer, getServer, listServers, updateServer } from "@/lib/servers/service";
import { createServerInput, trustedIssuerSchema, updateServerInput, type CreateServerInput } from "@/lib/servers/schemas";
import { addTool, importCatalog } from "@/lib/catalog/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
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

/** A valid create input, parsed by the same schema the route uses. */
function input(tenantId: string, extra: Partial<Record<keyof CreateServerInput, unknown>> = {}): CreateServerInput {
  const id = uniq();
  return createServerInput.parse({
    tenantId,
    name: `Server ${id}`,
    resourceUri: `https://mcp-${id}.example.com/mcp`,
    upstreamUrl: `http://upstream-${id}.internal:8080/mcp`,
    scopes: ["tickets.read", "tickets.write"],
    ...extra,
  });
}

const serverCount = async () => (await t.db.select({ n: count() }).from(servers))[0]!.n;
const accessCount = async () => (await t.db.select({ n: count() }).from(serverTenants))[0]!.n;

describe("server input validation", () => {
  it("rejects a malformed resource URI with a readable message on resourceUri", () => {
    for (const [bad, message] of [
      ["https://mcp.example.com/mcp#frag", "must not contain a fragment (#…)"],
      ["http://mcp.example.com/mcp", "must use https (http is allowed for localhost only)"],
      ["mcp.example.com/mcp", "must be an absolute URI (https://host/path)"],
      ["https://mcp.example.com/mcp?x=1", "must not contain a query (?…)"],
    ] as const) {
      const r = createServerInput.safeParse({ tenantId: "ten_x", name: "Good name", resourceUri: bad, upstreamUrl: "https://up.example/mcp" });
      expect(r.success, bad).toBe(false);
      expect(r.error!.issues).toEqual([expect.objectContaining({ path: ["resourceUri"], message })]);
    }
  });

  it("normalizes the resource URI and fills defaults", () => {
    const r = createServerInput.parse({ tenantId: "ten_x", name: "  Padded  ", resourceUri: "HTTPS://MCP.Example.com:443/mcp/", upstreamUrl: "http://localhost:3100/mcp" });
    expect(r).toMatchObject({ name: "Padded", resourceUri: "https://mcp.example.com/mcp", scopes: [], issuers: [], tenantIds: [], description: "" });
  });

  it("rejects repeated scopes, bad scope tokens and credentials in the upstream URL", () => {
    const base = { tenantId: "ten_x", name: "Good name", resourceUri: "https://a.example/mcp", upstreamUrl: "https://up.example/mcp" };
    expect(createServerInput.safeParse({ ...base, scopes: ["a", "a"] }).success).toBe(false);
    expect(createServerInput.safeParse({ ...base, scopes: ["has space"] }).success).toBe(false);
    expect(createServerInput.safeParse({ ...base, scopes: ['quo"te'] }).success).toBe(false);
    const cred = createServerInput.safeParse({ ...base, upstreamUrl: "https://user:pw@up.example/mcp" });
    expect(cred.error?.issues[0]?.path).toEqual(["upstreamUrl"]);
  });

  it("issuers accept asymmetric algorithms only: never none, never HMAC", () => {
    const issuer = { issuer: "https://login.example.com", algorithms: ["RS256"] };
    expect(trustedIssuerSchema.safeParse(issuer).success).toBe(true);
    for (const alg of ["none", "None", "HS256", "HS384", "HS512", ""]) {
      const r = trustedIssuerSchema.safeParse({ ...issuer, algorithms: [alg] });
      expect(r.success, alg).toBe(false);
      expect(r.error!.issues[0]!.path).toEqual(["algorithms", 0]);
      // Mixed with a good algorithm it is still refused.
      expect(trustedIssuerSchema.safeParse({ ...issuer, algorithms: ["RS256", alg] }).success, `RS256+${alg}`).toBe(false);
    }
    expect(trustedIssuerSchema.safeParse({ ...issuer, algorithms: [] }).success).toBe(false);
    // Through the server schema as well.
    const viaServer = createServerInput.safeParse({
      tenantId: "ten_x",
      name: "Good name",
      resourceUri: "https://a.example/mcp",
      upstreamUrl: "https://up.example/mcp",
      issuers: [{ issuer: "https://login.example.com", algorithms: ["HS256"] }],
    });
    expect(viaServer.success).toBe(false);
    expect(viaServer.error!.issues[0]!.path.slice(0, 2)).toEqual(["issuers", 0]);
  });

  it("issuers must be https (loopback excepted) and have a JWKS source", () => {
    expect(trustedIssuerSchema.safeParse({ issuer: "http://login.example.com" }).success).toBe(false);
    expect(trustedIssuerSchema.safeParse({ issuer: "https://login.example.com", discovery: false }).success).toBe(false);
    const ok = trustedIssuerSchema.parse({ issuer: "https://login.example.com", discovery: false, jwksUri: "https://login.example.com/jwks" });
    expect(ok).toMatchObject({ algorithms: ["RS256", "ES256"], claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope" } });
  });

  it("an update must change something, and carries only the fields sent (no defaults)", () => {
    expect(updateServerInput.safeParse({}).success).toBe(false);
    expect(updateServerInput.parse({ description: "x" })).toEqual({ description: "x" });
    expect(updateServerInput.parse({ name: "New name" })).toEqual({ name: "New name" });
  });
});

describe("servers", () => {
  it("creates a server with its metadata, access row and trail entry", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    const inp = input(a.id, { issuers: [{ issuer: "https://login.example.com" }] });
    const s = await createServer(adminA.ctx, inp);
    expect(s).toMatchObject({ tenantId: a.id, name: inp.name, resourceUri: inp.resourceUri, tenantIds: [a.id] });
    expect(s.protectedResourceMetadata).toEqual({
      resource: inp.resourceUri,
      authorization_servers: ["https://login.example.com"],
      scopes_supported: ["tickets.read", "tickets.write"],
      bearer_methods_supported: ["header"],
      resource_name: inp.name,
    });
    expect(await getServer(adminA.ctx, s.id)).toMatchObject({ id: s.id, tenantIds: [a.id] });
    const access = await t.db.select().from(serverTenants).where(eq(serverTenants.serverId, s.id));
    expect(access).toEqual([{ serverId: s.id, tenantId: a.id }]);
    const events = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, s.id));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "server.create", tenantId: a.id, actorId: adminA.user.id });
  });

  it("the same resource URI twice is a conflict on resourceUri, and nothing is half-written", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const first = await createServer(owner.ctx, input(a.id));
    const [servers0, access0] = [await serverCount(), await accessCount()];

    // Same URI in another spelling, in another tenant, shared with a third: still the same resource.
    const spelled = first.resourceUri.replace("https://", "HTTPS://").replace(/\/mcp$/, ":443/mcp/");
    const dup = input(b.id, { resourceUri: spelled, tenantIds: [a.id] });
    expect(dup.resourceUri).toBe(first.resourceUri);
    const err = await expectAppError(createServer(owner.ctx, dup), "conflict");
    expect(err.issues).toEqual([{ path: "resourceUri", message: "already registered" }]);

    expect(await serverCount()).toBe(servers0);
    expect(await accessCount()).toBe(access0);
    const orphans = await t.db
      .select({ n: count() })
      .from(serverTenants)
      .where(
        notExists(
          t.db
            .select({ x: sql`1` })
            .from(servers)
            .where(eq(servers.id, serverTenants.serverId)),
        ),
      );
    expect(orphans[0]!.n).toBe(0);
    expect(await t.db.select().from(servers).where(eq(servers.name, dup.name))).toEqual([]);
  });

  it("updating one field leaves scopes, issuers, description and sharing as they were", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const s = await createServer(owner.ctx, input(a.id, { description: "keep me", tenantIds: [b.id], issuers: [{ issuer: "https://login.example.com" }] }));
    const newName = uniq("Renamed ");
    const updated = await updateServer(owner.ctx, s.id, updateServerInput.parse({ name: newName }));
    expect(updated).toMatchObject({ name: newName, description: "keep me", scopes: s.scopes, issuers: s.issuers, tenantIds: [a.id, b.id] });
    expect(updated.issuers).toHaveLength(1);
    const access = await t.db.select().from(serverTenants).where(eq(serverTenants.serverId, s.id));
    expect(access.map((r) => r.tenantId).sort()).toEqual([a.id, b.id].sort());
  });

  it("the same name twice in one tenant is a conflict on name", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const first = await createServer(owner.ctx, input(a.id));
    const err = await expectAppError(createServer(owner.ctx, input(a.id, { name: first.name })), "conflict");
    expect(err.issues).toEqual([{ path: "name", message: "already exists" }]);
    // Another tenant may use the name.
    const b = await makeTenant(t.db, owner.actor);
    await expect(createServer(owner.ctx, input(b.id, { name: first.name }))).resolves.toMatchObject({ name: first.name });
  });

  it("updating onto another server's resource URI is a conflict and changes nothing", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const s1 = await createServer(owner.ctx, input(a.id));
    const s2 = await createServer(owner.ctx, input(a.id));
    const err = await expectAppError(updateServer(owner.ctx, s2.id, updateServerInput.parse({ resourceUri: s1.resourceUri })), "conflict");
    expect(err.issues?.[0]?.path).toBe("resourceUri");
    expect((await getServer(owner.ctx, s2.id)).resourceUri).toBe(s2.resourceUri);
  });

  it("a tenant admin cannot see or touch another tenant's server", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
    const s = await createServer(owner.ctx, input(a.id));

    await expectAppError(getServer(adminB.ctx, s.id), "not_found");
    await expectAppError(updateServer(adminB.ctx, s.id, updateServerInput.parse({ description: "mine now" })), "not_found");
    await expectAppError(deleteServer(adminB.ctx, s.id), "not_found");
    await expectAppError(addTool(adminB.ctx, s.id, { name: "evil", description: "", inputSchema: { type: "object" }, annotations: {}, risk: "unrated" }), "not_found");
    await expectAppError(importCatalog(adminB.ctx, s.id), "not_found");
    // Nor create one in that tenant.
    await expectAppError(createServer(adminB.ctx, input(a.id)), "validation_failed");

    const after = await getServer(owner.ctx, s.id);
    expect(after.description).toBe(s.description);
    expect((await listServers(adminB.ctx, page)).items.map((x) => x.id)).not.toContain(s.id);
  });

  it("a tenant admin cannot share its server with a tenant it does not administer", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const c = await makeTenant(t.db, owner.actor);
    // Admin in B, auditor in C, nothing in A.
    const adminB = await makeUser(t.db, {
      memberships: [
        [b.id, "admin"],
        [c.id, "auditor"],
      ],
    });
    const [servers0, access0] = [await serverCount(), await accessCount()];

    await expectAppError(createServer(adminB.ctx, input(b.id, { tenantIds: [c.id] })), "forbidden");
    // A tenant it cannot even read looks unknown, so its existence is not revealed.
    const unknown = await expectAppError(createServer(adminB.ctx, input(b.id, { tenantIds: [a.id] })), "validation_failed");
    expect(unknown.issues).toEqual([{ path: "tenantIds.0", message: "unknown tenant" }]);
    expect(await serverCount()).toBe(servers0);
    expect(await accessCount()).toBe(access0);

    const s = await createServer(adminB.ctx, input(b.id));
    await expectAppError(updateServer(adminB.ctx, s.id, updateServerInput.parse({ tenantIds: [c.id] })), "forbidden");
    await expectAppError(updateServer(adminB.ctx, s.id, updateServerInput.parse({ tenantIds: [a.id] })), "validation_failed");
    expect((await getServer(owner.ctx, s.id)).tenantIds).toEqual([b.id]);
  });

  it("a tenant auditor cannot create or change servers", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const auditorA = await makeUser(t.db, { memberships: [[a.id, "auditor"]] });
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    await expectAppError(createServer(auditorA.ctx, input(a.id)), "forbidden");
    await expectAppError(createServer(globalAuditor.ctx, input(a.id)), "forbidden");
    const s = await createServer(owner.ctx, input(a.id));
    expect((await getServer(auditorA.ctx, s.id)).id).toBe(s.id);
    expect((await getServer(globalAuditor.ctx, s.id)).id).toBe(s.id);
    await expectAppError(updateServer(auditorA.ctx, s.id, updateServerInput.parse({ description: "x" })), "forbidden");
    await expectAppError(deleteServer(globalAuditor.ctx, s.id), "forbidden");
  });

  it("no servers are created in a disabled tenant", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const { updateTenant } = await import("@/lib/tenants/service");
    await updateTenant(owner.ctx, a.id, { status: "disabled" });
    await expectAppError(createServer(owner.ctx, input(a.id)), "conflict");
  });

  it("sharing with B makes the server readable by B's admin, but not writable", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
    const adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
    const s = await createServer(adminA.ctx, input(a.id));
    await expectAppError(getServer(adminB.ctx, s.id), "not_found");

    // adminA cannot share with B (it does not administer B), an owner can.
    await expectAppError(updateServer(adminA.ctx, s.id, updateServerInput.parse({ tenantIds: [b.id] })), "validation_failed");
    const shared = await updateServer(owner.ctx, s.id, updateServerInput.parse({ tenantIds: [b.id] }));
    expect(shared.tenantIds).toEqual([a.id, b.id]);

    expect((await getServer(adminB.ctx, s.id)).tenantIds).toEqual([a.id, b.id]);
    await expectAppError(updateServer(adminB.ctx, s.id, updateServerInput.parse({ description: "taken over" })), "forbidden");
    await expectAppError(updateServer(adminB.ctx, s.id, updateServerInput.parse({ tenantIds: [] })), "forbidden");
    await expectAppError(deleteServer(adminB.ctx, s.id), "forbidden");
    await expectAppError(addTool(adminB.ctx, s.id, { name: "evil", description: "", inputSchema: { type: "object" }, annotations: {}, risk: "unrated" }), "forbidden");
    expect((await getServer(owner.ctx, s.id)).description).toBe(s.description);

    // The owning tenant's admin may still edit, and keeps B's access unless it drops it.
    const edited = await updateServer(adminA.ctx, s.id, updateServerInput.parse({ description: "edited" }));
    expect(edited).toMatchObject({ description: "edited", tenantIds: [a.id, b.id] });
    // Dropping a tenant one does not administer counts as changing its sharing.
    await expectAppError(updateServer(adminA.ctx, s.id, updateServerInput.parse({ tenantIds: [] })), "validation_failed");

    const ev = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, s.id)).orderBy(auditEvents.at, auditEvents.id);
    const share = ev.find((e) => e.action === "server.update" && e.actorId === owner.user.id);
    expect(share).toMatchObject({ before: { tenantIds: [a.id] }, after: { tenantIds: [a.id, b.id] } });
  });

  it("listServers shows what the caller may use and filters by tenant", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const c = await makeTenant(t.db, owner.actor);
    const onlyA = await createServer(owner.ctx, input(a.id));
    const aSharedB = await createServer(owner.ctx, input(a.id, { tenantIds: [b.id] }));
    const onlyB = await createServer(owner.ctx, input(b.id));
    const onlyC = await createServer(owner.ctx, input(c.id));
    const ids = async (ctx: MadeUser["ctx"], q: { tenantId?: string } = {}) => (await listServers(ctx, { ...page, ...q })).items.map((s) => s.id).sort();
    const mine = new Set([onlyA.id, aSharedB.id, onlyB.id, onlyC.id]);
    const only = (xs: string[]) => xs.filter((x) => mine.has(x));

    expect(only(await ids(owner.ctx, { tenantId: a.id }))).toEqual([onlyA.id, aSharedB.id].sort());
    expect(only(await ids(owner.ctx, { tenantId: b.id }))).toEqual([aSharedB.id, onlyB.id].sort());
    expect(only(await ids(owner.ctx, { tenantId: c.id }))).toEqual([onlyC.id]);
    expect(only(await ids(owner.ctx))).toEqual([...mine].sort());

    const adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
    expect(await ids(adminB.ctx)).toEqual([aSharedB.id, onlyB.id].sort());
    // Filtering on a tenant it cannot read shows nothing of that tenant.
    expect(await ids(adminB.ctx, { tenantId: c.id })).toEqual([]);
    expect(await ids((await makeUser(t.db)).ctx)).toEqual([]);

    const listed = (await listServers(adminB.ctx, page)).items.find((s) => s.id === aSharedB.id)!;
    expect(listed).toMatchObject({ tenantIds: [a.id, b.id], toolCount: 0, pendingCount: 0 });
    const search = await listServers(owner.ctx, { ...page, q: onlyC.name });
    expect(search.items.map((s) => s.id)).toEqual([onlyC.id]);
  });

  it("deleting a server removes its access rows and records the deletion", async () => {
    const a = await makeTenant(t.db, owner.actor);
    const b = await makeTenant(t.db, owner.actor);
    const s = await createServer(owner.ctx, input(a.id, { tenantIds: [b.id] }));
    await deleteServer(owner.ctx, s.id);
    expect(await t.db.select().from(servers).where(eq(servers.id, s.id))).toEqual([]);
    expect(await t.db.select().from(serverTenants).where(eq(serverTenants.serverId, s.id))).toEqual([]);
    await expectAppError(getServer(owner.ctx, s.id), "not_found");
    const [ev] = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "server.delete"), eq(auditEvents.targetId, s.id)));
    expect(ev?.before).toMatchObject({ id: s.id, resourceUri: s.resourceUri });
  });
});
