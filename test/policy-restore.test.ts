import { and, desc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "@/db/schema";
import { restorePolicyVersion } from "@/lib/policy/restore";
import { policyRuleSchema } from "@/lib/policy/rule";
import { createPolicy, getPolicy, updatePolicy } from "@/lib/policy/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

// "Restore this version" on a policy's History: the version a trail event left
// becomes the draft again, through updatePolicy (validation, concurrency, trail).

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let adminB: MadeUser;
let auditorA: MadeUser;
let tenantA: { id: string };
let serverA: { id: string };

const V1 = `permit (principal, action == Action::"list_tools", resource);`;
const V2 = `forbid (principal, action == Action::"list_tools", resource);`;
const V3 = `permit (principal, action, resource);`;

const eventsOf = (policyId: string) =>
  t.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.targetType, "policy"), eq(auditEvents.targetId, policyId)))
    .orderBy(desc(auditEvents.at), desc(auditEvents.id));

async function policyWithHistory() {
  const name1 = uniq("first name ");
  const p = (await createPolicy(adminA.ctx, { tenantId: tenantA.id, serverId: serverA.id, name: name1, description: "", kind: "cedar", enabled: true, cedar: V1 }))!;
  await updatePolicy(adminA.ctx, p.id, { name: uniq("second name "), cedar: V2 });
  const now = (await updatePolicy(adminA.ctx, p.id, { cedar: V3, enabled: false }))!;
  const [, , created] = await eventsOf(p.id);
  expect(created!.action).toBe("policy.create");
  return { p: now, name1, created: created! };
}

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor))!;
  const tenantB = (await makeTenant(t.db, owner.actor))!;
  adminA = await makeUser(t.db, { memberships: [[tenantA.id, "admin"]] });
  auditorA = await makeUser(t.db, { memberships: [[tenantA.id, "auditor"]] });
  adminB = await makeUser(t.db, { memberships: [[tenantB.id, "admin"]] });
  serverA = (await makeServer(owner.ctx, tenantA.id))!;
});

afterAll(async () => {
  await t?.close();
});

describe("restorePolicyVersion", () => {
  it("brings back the version of an earlier event as a new draft, recorded as policy.restore", async () => {
    const { p, name1, created } = await policyWithHistory();
    const restored = (await restorePolicyVersion(adminA.ctx, p.id, { eventId: created.id, baseUpdatedAt: p.updatedAt }))!;
    expect(restored).toMatchObject({ name: name1, cedar: V1, enabled: true });
    expect(await getPolicy(adminA.ctx, p.id)).toMatchObject({ name: name1, cedar: V1, enabled: true });
    expect(new Date(restored.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(p.updatedAt).getTime());

    const [last] = await eventsOf(p.id);
    expect(last!.action).toBe("policy.restore");
    expect(last!.actorId).toBe(adminA.user.id);
    expect(last!.tenantId).toBe(tenantA.id);
    expect(last!.before).toMatchObject({ cedar: V3, enabled: false });
    expect(last!.after).toMatchObject({ name: name1, cedar: V1, enabled: true, restoredFrom: { eventId: created.id, at: created.at.toISOString() } });

    // A restore event is itself a version: restoring the update before it works the same way.
    const [, second] = (await eventsOf(p.id)).filter((e) => e.action === "policy.update");
    const again = (await restorePolicyVersion(adminA.ctx, p.id, { eventId: second!.id }))!;
    expect(again).toMatchObject({ cedar: V2, enabled: true });
  });

  it("refuses a stale page (optimistic concurrency, as an edit)", async () => {
    const { p, created } = await policyWithHistory();
    await updatePolicy(adminA.ctx, p.id, { description: "changed meanwhile" });
    const err = await expectAppError(restorePolicyVersion(adminA.ctx, p.id, { eventId: created.id, baseUpdatedAt: p.updatedAt }), "conflict");
    expect(err.message).toMatch(/changed by someone else/);
    expect(await getPolicy(adminA.ctx, p.id)).toMatchObject({ cedar: V3 });
  });

  it("validates like an edit: a name taken since by another policy is refused and nothing changes", async () => {
    const { p, name1, created } = await policyWithHistory();
    await createPolicy(adminA.ctx, { tenantId: tenantA.id, serverId: serverA.id, name: name1, description: "", kind: "cedar", enabled: true, cedar: V1 });
    const err = await expectAppError(restorePolicyVersion(adminA.ctx, p.id, { eventId: created.id }), "conflict");
    expect(err.issues).toEqual([{ path: "name", message: "already exists" }]);
    expect(await getPolicy(adminA.ctx, p.id)).toMatchObject({ cedar: V3, enabled: false });
    expect((await eventsOf(p.id))[0]!.action).toBe("policy.update");
  });

  it("only takes this policy's own version events, and only for those who may edit it", async () => {
    const { p, created } = await policyWithHistory();
    const other = await policyWithHistory();
    // Another policy's event: not a version of this one.
    await expectAppError(restorePolicyVersion(adminA.ctx, p.id, { eventId: other.created.id }), "not_found");
    // An event that is not a version (the server's creation).
    const [serverEvent] = await t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.targetType, "server"), eq(auditEvents.targetId, serverA.id)));
    await expectAppError(restorePolicyVersion(adminA.ctx, p.id, { eventId: serverEvent!.id }), "not_found");
    // Another tenant's admin does not see the policy; an auditor may read but not write.
    await expectAppError(restorePolicyVersion(adminB.ctx, p.id, { eventId: created.id }), "not_found");
    await expectAppError(restorePolicyVersion(auditorA.ctx, p.id, { eventId: created.id }), "forbidden");
    expect(await getPolicy(adminA.ctx, p.id)).toMatchObject({ cedar: V3 });
  });

  it("restores a rule policy from the rule its trail kept", async () => {
    const rule = policyRuleSchema.parse({ effect: "forbid", actions: ["call_tool"], toolFilter: { destructive: true } });
    const p = (await createPolicy(adminA.ctx, { tenantId: tenantA.id, serverId: serverA.id, name: uniq("rule "), description: "", kind: "rule", enabled: true, rule } as never))!;
    const [created] = await eventsOf(p.id);
    expect(created!.after).toMatchObject({ rule });
    await updatePolicy(adminA.ctx, p.id, { rule: { ...rule, effect: "permit" } } as never);
    expect((await getPolicy(adminA.ctx, p.id)).cedar).toMatch(/^permit|\npermit/m);
    const restored = (await restorePolicyVersion(adminA.ctx, p.id, { eventId: created!.id }))!;
    expect(restored.rule).toMatchObject({ effect: "forbid", toolFilter: { destructive: true } });
    expect(restored.cedar).toBe(p.cedar);
  });
});
