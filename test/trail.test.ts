import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { count, eq, inArray } from "drizzle-orm";
import { auditEvents } from "@/db/schema";
import { addTool, addToolInput } from "@/lib/catalog/service";
import { createServer, updateServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { addMember, updateTenant } from "@/lib/tenants/service";
import { listTrail, trailQuery } from "@/lib/trail/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
let tenantB: string;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });

  // A handful of changes in both tenants, some by the tenant admin.
  for (const [tenantId, who] of [
    [tenantA, adminA],
    [tenantB, owner],
    [tenantA, owner],
  ] as const) {
    const id = uniq();
    const s = await createServer(who.ctx, createServerInput.parse({ tenantId, name: `Trail ${id}`, resourceUri: `https://trail-${id}.example.com/mcp`, upstreamUrl: "https://up.example/mcp" }));
    await updateServer(who.ctx, s.id, { description: "changed" });
    await addTool(who.ctx, s.id, addToolInput.parse({ name: "a_tool", inputSchema: { type: "object" } }));
  }
  await updateTenant(owner.ctx, tenantB, { name: uniq("Renamed ") });
  await addMember(owner.ctx, tenantB, { email: `${uniq("m-")}@test.example`, role: "auditor" });
});
afterAll(async () => {
  await t?.close();
});

/** Follows nextCursor until the end, checking each page's size. */
async function allPages(ctx: MadeUser["ctx"], q: Record<string, unknown>, limit: number) {
  const ids: string[] = [];
  const ats: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await listTrail(ctx, trailQuery.parse({ ...q, limit, cursor }));
    expect(page.items.length).toBeLessThanOrEqual(limit);
    if (page.nextCursor) expect(page.items.length).toBe(limit);
    ids.push(...page.items.map((e) => e.id));
    ats.push(...page.items.map((e) => e.at));
    if (!page.nextCursor) return { ids, ats, pages: pages + 1 };
    cursor = page.nextCursor;
  }
  throw new Error("trail paging did not end");
}

describe("admin trail", () => {
  it("pages with limit 2 through every event exactly once, newest first", async () => {
    const [{ n }] = (await t.db.select({ n: count() }).from(auditEvents)) as [{ n: number }];
    expect(n).toBeGreaterThanOrEqual(12);
    const { ids, ats, pages } = await allPages(owner.ctx, {}, 2);
    expect(ids).toHaveLength(n);
    expect(new Set(ids).size).toBe(n);
    expect(pages).toBe(Math.ceil(n / 2));
    const all = (await t.db.select({ id: auditEvents.id }).from(auditEvents)).map((r) => r.id);
    expect([...ids].sort()).toEqual(all.sort());
    // Newest first: timestamps never increase along the pages.
    for (let i = 1; i < ats.length; i++) expect(ats[i]! <= ats[i - 1]!, `${ats[i]} after ${ats[i - 1]}`).toBe(true);
  });

  it("pages through events that share one timestamp without losing any", async () => {
    // Several events with the same `at`: the id breaks the tie.
    const at = new Date("2030-01-01T00:00:00.000Z");
    const same = Array.from({ length: 5 }, (_, i) => ({
      id: `evt_${"f".repeat(31)}${i}`,
      at,
      actorType: "system" as const,
      actorId: "system",
      actorLabel: "system",
      action: "test.tie",
      targetType: "test",
      targetId: "tie",
      tenantId: null,
    }));
    await t.db.insert(auditEvents).values(same);
    const { ids } = await allPages(owner.ctx, { action: "test.tie" }, 2);
    expect(ids).toEqual(same.map((e) => e.id).reverse());
    await t.db.delete(auditEvents).where(
      inArray(
        auditEvents.id,
        same.map((e) => e.id),
      ),
    );
  });

  it("a tenant admin sees only its tenant's events", async () => {
    const { ids } = await allPages(adminA.ctx, {}, 3);
    const expected = (await t.db.select({ id: auditEvents.id }).from(auditEvents).where(eq(auditEvents.tenantId, tenantA))).map((r) => r.id);
    expect(expected.length).toBeGreaterThan(0);
    expect([...ids].sort()).toEqual(expected.sort());
    // Asking for another tenant explicitly gives nothing.
    expect((await listTrail(adminA.ctx, trailQuery.parse({ tenantId: tenantB }))).items).toEqual([]);
    // No memberships: nothing at all.
    expect((await listTrail((await makeUser(t.db)).ctx, trailQuery.parse({}))).items).toEqual([]);
    // A global auditor sees everything.
    const auditor = await makeUser(t.db, { role: "auditor" });
    const [{ n }] = (await t.db.select({ n: count() }).from(auditEvents)) as [{ n: number }];
    expect((await allPages(auditor.ctx, {}, 50)).ids).toHaveLength(n);
  });

  it("filters by action prefix, exact action, tenant, actor and target", async () => {
    const servers = await listTrail(owner.ctx, trailQuery.parse({ action: "server.", limit: 200 }));
    expect(servers.items.length).toBe(6);
    expect(new Set(servers.items.map((e) => e.action))).toEqual(new Set(["server.create", "server.update"]));

    const creates = await listTrail(owner.ctx, trailQuery.parse({ action: "server.create", limit: 200 }));
    expect(creates.items.map((e) => e.action)).toEqual(["server.create", "server.create", "server.create"]);
    // Without the trailing dot it is an exact match, not a prefix.
    expect((await listTrail(owner.ctx, trailQuery.parse({ action: "server" }))).items).toEqual([]);
    // LIKE wildcards in the prefix are literal.
    expect((await listTrail(owner.ctx, trailQuery.parse({ action: "%." }))).items).toEqual([]);
    expect((await listTrail(owner.ctx, trailQuery.parse({ action: "_erver." }))).items).toEqual([]);

    const inB = await listTrail(owner.ctx, trailQuery.parse({ tenantId: tenantB, limit: 200 }));
    expect(inB.items.length).toBeGreaterThan(0);
    expect(inB.items.every((e) => e.tenantId === tenantB)).toBe(true);

    const byAdmin = await listTrail(owner.ctx, trailQuery.parse({ actor: adminA.user.id, limit: 200 }));
    expect(byAdmin.items.map((e) => e.action).sort()).toEqual(["server.create", "server.update", "tool.add"]);
    const target = byAdmin.items.find((e) => e.action === "server.create")!.targetId;
    const forTarget = await listTrail(owner.ctx, trailQuery.parse({ targetId: target, limit: 200 }));
    expect(forTarget.items.map((e) => e.action)).toEqual(["server.update", "server.create"]);
    expect(forTarget.items[0]).toMatchObject({ before: { description: "" }, after: { description: "changed" } });
  });

  it("refuses a forged cursor", async () => {
    await expectAppError(listTrail(owner.ctx, trailQuery.parse({ cursor: "not-a-cursor" })), "bad_request");
    await expectAppError(listTrail(owner.ctx, trailQuery.parse({ cursor: Buffer.from("garbage|").toString("base64url") })), "bad_request");
  });
});
