import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, fleetServers, fleets, maskingRules } from "@/db/schema";
import { getBundle, listBundles, publishBundle } from "@/lib/bundles/service";
import { publicKeys, type Kek } from "@/lib/bundles/signing";
import { addTool } from "@/lib/catalog/service";
import { verifyBundle } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { createMaskingRule, deleteMaskingRule, listMaskingRules, maskingRuleInput, updateMaskingRule } from "@/lib/masking/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("masking rules", () => {
  let t: TestDb;
  let owner: MadeUser;
  let admin: MadeUser;
  let auditor: MadeUser;
  let otherAdmin: MadeUser;
  let tenantId: string;
  let serverId: string;
  let fleetId: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantId = (await makeTenant(t.db, owner.actor)).id;
    const tenantB = (await makeTenant(t.db, owner.actor)).id;
    admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    auditor = await makeUser(t.db, { memberships: [[tenantId, "auditor"]] });
    otherAdmin = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
    serverId = (await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.mask.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["pay"] }),
    ))!.id;
    await addTool(owner.ctx, serverId, {
      name: "pay",
      description: "pay",
      inputSchema: { type: "object", properties: { amount: { type: "integer" }, card: { type: "object" } } },
      annotations: {},
      risk: "high",
    });
    await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { pay: ["pay"] } });
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: "mask fleet" });
    await t.db.insert(fleetServers).values({ fleetId, serverId });
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
  });
  afterAll(() => t.close());

  const liveContent = async () => {
    const { activeRevision } = await listBundles(owner.ctx, fleetId);
    const b = await getBundle(owner.ctx, fleetId, activeRevision!);
    return verifyBundle(b, { keys: await publicKeys(t.db), fleetId });
  };
  const input = (over: Partial<{ tool: string; paths: string[]; mode: "hide" | "hash" }> = {}) => maskingRuleInput.parse({ tool: "pay", paths: ["card.number"], mode: "hide", ...over });

  it("creates, lists, updates and deletes a rule, republishing the live bundle each time with a trail row", async () => {
    const rev0 = (await listBundles(owner.ctx, fleetId)).activeRevision!;
    const rule = await createMaskingRule(admin.ctx, serverId, input({ paths: ["card.number", "items.*.ssn", "card.number"] }), kek);
    expect(rule).toMatchObject({ serverId, tool: "pay", paths: ["card.number", "items.*.ssn"], mode: "hide" });
    expect((await listBundles(owner.ctx, fleetId)).activeRevision).toBe(rev0 + 1);
    expect((await liveContent()).masking).toEqual([{ serverId, tool: "pay", paths: ["card.number", "items.*.ssn"], mode: "hide" }]);

    const list = await listMaskingRules(auditor.ctx, serverId);
    expect(list.items.map((r) => r.id)).toEqual([rule.id]);
    expect(list.tools).toEqual(["pay"]);

    const updated = await updateMaskingRule(admin.ctx, serverId, rule.id, input({ tool: "*", paths: ["token"], mode: "hash" }), kek);
    expect(updated).toMatchObject({ id: rule.id, tool: "*", paths: ["token"], mode: "hash" });
    expect((await liveContent()).masking).toEqual([{ serverId, tool: "*", paths: ["token"], mode: "hash" }]);
    expect((await listBundles(owner.ctx, fleetId)).activeRevision).toBe(rev0 + 2);

    await deleteMaskingRule(admin.ctx, serverId, rule.id, kek);
    expect((await liveContent()).masking).toEqual([]);
    expect((await listBundles(owner.ctx, fleetId)).activeRevision).toBe(rev0 + 3);
    expect(await t.db.select().from(maskingRules).where(eq(maskingRules.id, rule.id))).toHaveLength(0);

    const trail = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.targetType, "masking_rule"), eq(auditEvents.targetId, rule.id)));
    expect(trail.map((e) => e.action).sort()).toEqual(["masking.create", "masking.delete", "masking.update"]);
    expect(trail.every((e) => e.tenantId === tenantId)).toBe(true);
    const republished = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "bundle.republish"), eq(auditEvents.targetId, fleetId)));
    expect(republished.length).toBeGreaterThanOrEqual(3);
  });

  it("refuses bad paths, too many paths and unknown tools with readable messages (422), and writes nothing", async () => {
    const before = await t.db.select().from(maskingRules);
    for (const paths of [["a..b"], ["card.num*"], [""], ["x".repeat(201)], [], Array.from({ length: 51 }, (_, i) => `p${i}`)]) {
      expect(maskingRuleInput.safeParse({ tool: "pay", paths, mode: "hide" }).success).toBe(false);
    }
    const bad = maskingRuleInput.safeParse({ tool: "pay", paths: ["ok", "a..b"], mode: "hide" });
    expect(bad.error?.issues[0]?.path).toEqual(["paths", 1]);
    expect(bad.error?.issues[0]?.message).toMatch(/empty segment/);
    expect(maskingRuleInput.safeParse({ tool: "pay", paths: ["a"], mode: "blur" }).success).toBe(false);

    const err = await expectAppError(createMaskingRule(admin.ctx, serverId, input({ tool: "nope" }), kek), "validation_failed");
    expect(err.message).toMatch(/"nope" is not in this server's catalogue/);
    expect(err.issues?.[0]?.path).toBe("tool");
    expect(await t.db.select().from(maskingRules)).toEqual(before);
  });

  it("hides other tenants' servers (404) and refuses readers without masking.write (403)", async () => {
    await expectAppError(listMaskingRules(otherAdmin.ctx, serverId), "not_found");
    await expectAppError(createMaskingRule(otherAdmin.ctx, serverId, input(), kek), "not_found");
    await expectAppError(createMaskingRule(auditor.ctx, serverId, input(), kek), "forbidden");
    const rule = await createMaskingRule(owner.ctx, serverId, input(), kek);
    await expectAppError(updateMaskingRule(auditor.ctx, serverId, rule.id, input(), kek), "forbidden");
    await expectAppError(deleteMaskingRule(auditor.ctx, serverId, rule.id, kek), "forbidden");
    await expectAppError(deleteMaskingRule(otherAdmin.ctx, serverId, rule.id, kek), "not_found");
    await expectAppError(deleteMaskingRule(admin.ctx, serverId, newId("mask"), kek), "not_found");
    await expectAppError(listMaskingRules(admin.ctx, newId("server")), "not_found");
    expect((await liveContent()).masking).toHaveLength(1);
    await deleteMaskingRule(admin.ctx, serverId, rule.id, kek);
  });
});
