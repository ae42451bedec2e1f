import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, count, eq } from "drizzle-orm";
import { auditEvents, scopeMappings } from "@/db/schema";
import { addTool, addToolInput } from "@/lib/catalog/service";
import { getScopeMapping, listScopeMappingVersions, putScopeMapping, putScopeMappingInput } from "@/lib/scopes/service";
import { createServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let owner: MadeUser;
let admin: MadeUser;
let tenantId: string;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
});
afterAll(async () => {
  await t?.close();
});

/** A server with scopes tickets.read / tickets.write and tools list_tickets / close_ticket. */
async function serverWithTools() {
  const id = uniq();
  const s = await createServer(
    admin.ctx,
    createServerInput.parse({
      tenantId,
      name: `Scoped ${id}`,
      resourceUri: `https://scoped-${id}.example.com/mcp`,
      upstreamUrl: "https://upstream.example/mcp",
      scopes: ["tickets.read", "tickets.write"],
    }),
  );
  for (const name of ["list_tickets", "close_ticket"]) {
    await addTool(admin.ctx, s.id, addToolInput.parse({ name, inputSchema: { type: "object" } }));
  }
  return s;
}
const versionCount = async (serverId: string) => (await t.db.select({ n: count() }).from(scopeMappings).where(eq(scopeMappings.serverId, serverId)))[0]!.n;

describe("scope mappings", () => {
  it("starts at version 0 and saving from base 0 creates version 1", async () => {
    const s = await serverWithTools();
    const empty = await getScopeMapping(admin.ctx, s.id);
    expect(empty).toMatchObject({ version: 0, mapping: {}, scopes: ["tickets.read", "tickets.write"] });
    expect(empty.tools.map((x) => x.name)).toEqual(["close_ticket", "list_tickets"]);

    const saved = await putScopeMapping(admin.ctx, s.id, putScopeMappingInput.parse({ baseVersion: 0, mapping: { "tickets.read": ["list_tickets", "list_tickets"], "tickets.write": [] } }));
    // Duplicates collapse and empty scopes drop out.
    expect(saved).toEqual({ version: 1, mapping: { "tickets.read": ["list_tickets"] } });
    expect(await getScopeMapping(admin.ctx, s.id)).toMatchObject({ version: 1, mapping: { "tickets.read": ["list_tickets"] }, updatedBy: admin.actor.label });

    const [ev] = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "scopes.update"), eq(auditEvents.targetId, s.id)));
    expect(ev).toMatchObject({ tenantId, before: {}, after: { "tickets.read": ["list_tickets"] } });
  });

  it("a stale base version is a conflict and writes nothing", async () => {
    const s = await serverWithTools();
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: { "tickets.read": ["list_tickets"] } });
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 1, mapping: { "tickets.read": ["list_tickets"], "tickets.write": ["close_ticket"] } });
    await expectAppError(putScopeMapping(admin.ctx, s.id, { baseVersion: 1, mapping: {} }), "conflict");
    await expectAppError(putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: {} }), "conflict");
    await expectAppError(putScopeMapping(admin.ctx, s.id, { baseVersion: 7, mapping: {} }), "conflict");
    expect(await versionCount(s.id)).toBe(2);
    expect((await getScopeMapping(admin.ctx, s.id)).mapping).toEqual({ "tickets.read": ["list_tickets"], "tickets.write": ["close_ticket"] });
  });

  it("two saves racing from the same base: exactly one wins", async () => {
    const s = await serverWithTools();
    const results = await Promise.allSettled([
      putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: { "tickets.read": ["list_tickets"] } }),
      putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: { "tickets.write": ["close_ticket"] } }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toMatchObject({ code: "conflict" });
    expect(await versionCount(s.id)).toBe(1);
  });

  it("unknown scopes and tools fail validation, naming each, and no version is written", async () => {
    const s = await serverWithTools();
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: { "tickets.read": ["list_tickets"] } });
    const err = await expectAppError(
      putScopeMapping(admin.ctx, s.id, { baseVersion: 1, mapping: { "admin.all": ["list_tickets"], "tickets.write": ["close_ticket", "drop_database"] } }),
      "validation_failed",
    );
    expect(err.issues).toEqual([
      { path: "mapping.admin.all", message: 'scope "admin.all" is not supported by this server' },
      { path: "mapping.tickets.write.1", message: 'tool "drop_database" is not in the catalogue' },
    ]);
    expect(await versionCount(s.id)).toBe(1);

    // A tool of another server is unknown here too.
    const other = await serverWithTools();
    await addTool(admin.ctx, other.id, addToolInput.parse({ name: "only_elsewhere", inputSchema: { type: "object" } }));
    const cross = await expectAppError(putScopeMapping(admin.ctx, s.id, { baseVersion: 1, mapping: { "tickets.read": ["only_elsewhere"] } }), "validation_failed");
    expect(cross.issues).toEqual([{ path: "mapping.tickets.read.0", message: 'tool "only_elsewhere" is not in the catalogue' }]);
    expect(await versionCount(s.id)).toBe(1);
  });

  it("the input schema rejects malformed scopes, tool names and base versions", () => {
    expect(putScopeMappingInput.safeParse({ baseVersion: 0, mapping: { "has space": [] } }).success).toBe(false);
    expect(putScopeMappingInput.safeParse({ baseVersion: 0, mapping: { ok: ["bad name"] } }).success).toBe(false);
    expect(putScopeMappingInput.safeParse({ baseVersion: -1, mapping: {} }).success).toBe(false);
    expect(putScopeMappingInput.safeParse({ baseVersion: 1.5, mapping: {} }).success).toBe(false);
    expect(putScopeMappingInput.safeParse({ mapping: {} }).success).toBe(false);
  });

  it("lists versions newest first", async () => {
    const s = await serverWithTools();
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 0, mapping: { "tickets.read": ["list_tickets"] } });
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 1, mapping: { "tickets.read": ["close_ticket", "list_tickets"] } });
    await putScopeMapping(admin.ctx, s.id, { baseVersion: 2, mapping: {} });
    const versions = await listScopeMappingVersions(admin.ctx, s.id);
    expect(versions.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(versions.map((v) => v.mapping)).toEqual([{}, { "tickets.read": ["close_ticket", "list_tickets"] }, { "tickets.read": ["list_tickets"] }]);
  });

  it("auditors read but cannot save; other tenants cannot see the mapping", async () => {
    const s = await serverWithTools();
    const tenantAuditor = await makeUser(t.db, { memberships: [[tenantId, "auditor"]] });
    const globalAuditor = await makeUser(t.db, { role: "auditor" });
    const outsider = await makeUser(t.db, { memberships: [[(await makeTenant(t.db, owner.actor)).id, "admin"]] });
    for (const who of [tenantAuditor, globalAuditor]) {
      expect((await getScopeMapping(who.ctx, s.id)).version).toBe(0);
      await expectAppError(putScopeMapping(who.ctx, s.id, { baseVersion: 0, mapping: { "tickets.read": ["list_tickets"] } }), "forbidden");
    }
    await expectAppError(getScopeMapping(outsider.ctx, s.id), "not_found");
    await expectAppError(listScopeMappingVersions(outsider.ctx, s.id), "not_found");
    await expectAppError(putScopeMapping(outsider.ctx, s.id, { baseVersion: 0, mapping: {} }), "not_found");
    expect(await versionCount(s.id)).toBe(0);
  });
});
