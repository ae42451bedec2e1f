import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents, grants, vaultEntries } from "@/db/schema";
import { createFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import { createPolicy } from "@/lib/policy/service";
import { recordEvent } from "@/lib/trail/record";
import { listTrail, trailQuery } from "@/lib/trail/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

// Admin-trail targets are named and linked, in one query per page, and only
// objects of the viewer's tenants are named: an event the viewer sees that
// points at another tenant's object shows the bare id.

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
const objs = {} as Record<"tenantA" | "tenantB" | "serverA" | "serverB" | "policyA" | "policyB" | "fleetA" | "fleetB" | "vaultA" | "vaultB" | "grantA" | "grantB", { id: string; name: string }>;
let agentA: { id: string; name: string };

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  objs.tenantA = (await makeTenant(t.db, owner.actor)) as { id: string; name: string };
  objs.tenantB = (await makeTenant(t.db, owner.actor)) as { id: string; name: string };
  adminA = await makeUser(t.db, { memberships: [[objs.tenantA.id, "admin"]] });
  objs.serverA = (await makeServer(owner.ctx, objs.tenantA.id)) as { id: string; name: string };
  objs.serverB = (await makeServer(owner.ctx, objs.tenantB.id)) as { id: string; name: string };
  const policy = async (tenantId: string, serverId: string) =>
    (await createPolicy(owner.ctx, { tenantId, serverId, name: uniq("policy "), description: "", kind: "cedar", enabled: true, cedar: "permit(principal, action, resource);" }))!;
  objs.policyA = await policy(objs.tenantA.id, objs.serverA.id);
  objs.policyB = await policy(objs.tenantB.id, objs.serverB.id);
  objs.fleetA = (await createFleet(owner.ctx, { name: uniq("Fleet A "), serverIds: [objs.serverA.id] } as never)) as { id: string; name: string };
  objs.fleetB = (await createFleet(owner.ctx, { name: uniq("Fleet B "), serverIds: [objs.serverB.id] } as never)) as { id: string; name: string };
  agentA = { id: newId("agent"), name: uniq("agent-a-") };
  await t.db.insert(agents).values({ id: agentA.id, fleetId: objs.fleetA.id, name: agentA.name, keyHash: "x".repeat(64) } as never);
  for (const [key, server, tenant] of [
    ["vaultA", objs.serverA, objs.tenantA],
    ["vaultB", objs.serverB, objs.tenantB],
  ] as const) {
    const id = newId("vaultEntry");
    const name = uniq(`${key} `);
    await t.db
      .insert(vaultEntries)
      .values({ id, serverId: server.id, tenantId: key === "vaultA" ? null : tenant.id, name, kind: "bearer", placement: { in: "header", name: "authorization" }, createdBy: "test" } as never);
    objs[key] = { id, name };
  }
  for (const [key, server, tenant] of [
    ["grantA", objs.serverA, objs.tenantA],
    ["grantB", objs.serverB, objs.tenantB],
  ] as const) {
    const id = newId("grant");
    const userId = `https://idp.example#${uniq("user-")}`;
    await t.db.insert(grants).values({ id, tenantId: tenant.id, serverId: server.id, userId, clientId: "claude" });
    objs[key] = { id, name: userId };
  }
  // Events in tenant A's trail that point at both tenants' objects (as a forged or buggy record could).
  const pairs: [string, { id: string }][] = [
    ["tenant", objs.tenantA],
    ["tenant", objs.tenantB],
    ["server", objs.serverA],
    ["server", objs.serverB],
    ["policy", objs.policyA],
    ["policy", objs.policyB],
    ["fleet", objs.fleetA],
    ["fleet", objs.fleetB],
    ["agent", agentA],
    ["vault_entry", objs.vaultA],
    ["vault_entry", objs.vaultB],
    ["grant", objs.grantA],
    ["grant", objs.grantB],
  ];
  for (const [targetType, o] of pairs) await recordEvent(t.db, owner.actor, { action: "names.test", targetType, targetId: o.id, tenantId: objs.tenantA.id });
});

afterAll(async () => {
  await t?.close();
});

const page = (m: MadeUser) => listTrail(m.ctx, trailQuery.parse({ tenantId: objs.tenantA.id, action: "names.test", limit: 50 }));

describe("trail target names", () => {
  it("names and links the targets of the viewer's tenants", async () => {
    const { items, names } = await page(adminA);
    expect(items).toHaveLength(13);
    expect(names.tenant?.[objs.tenantA.id]).toEqual({ name: objs.tenantA.name, href: `/tenants/${objs.tenantA.id}` });
    expect(names.server?.[objs.serverA.id]).toEqual({ name: objs.serverA.name, href: `/servers/${objs.serverA.id}` });
    expect(names.policy?.[objs.policyA.id]).toEqual({ name: objs.policyA.name, href: `/policies/${objs.policyA.id}` });
    expect(names.fleet?.[objs.fleetA.id]).toEqual({ name: objs.fleetA.name, href: `/fleets/${objs.fleetA.id}` });
    expect(names.agent?.[agentA.id]).toEqual({ name: agentA.name, href: `/fleets/${objs.fleetA.id}` });
    // A vault entry shared by every tenant of the server is readable through the server's tenant.
    expect(names.vault_entry?.[objs.vaultA.id]).toEqual({ name: objs.vaultA.name, href: `/vault/${objs.vaultA.id}` });
    expect(names.grant?.[objs.grantA.id]).toEqual({ name: `${objs.grantA.name} · claude`, href: `/grants/user?id=${encodeURIComponent(objs.grantA.name)}` });
  });

  it("never names another tenant's objects, even when a visible event points at them", async () => {
    const { names } = await page(adminA);
    const text = JSON.stringify(names);
    for (const o of [objs.tenantB, objs.serverB, objs.policyB, objs.fleetB, objs.vaultB, objs.grantB]) {
      expect(text).not.toContain(o.id);
      expect(text).not.toContain(o.name);
    }
  });

  it("an owner sees every name", async () => {
    const { names } = await page(owner);
    expect(names.tenant?.[objs.tenantB.id]?.name).toBe(objs.tenantB.name);
    expect(names.server?.[objs.serverB.id]?.name).toBe(objs.serverB.name);
    expect(names.policy?.[objs.policyB.id]?.name).toBe(objs.policyB.name);
    expect(names.fleet?.[objs.fleetB.id]?.name).toBe(objs.fleetB.name);
    expect(names.vault_entry?.[objs.vaultB.id]?.name).toBe(objs.vaultB.name);
    expect(names.grant?.[objs.grantB.id]?.name).toBe(`${objs.grantB.name} · claude`);
  });

  it("a viewer with no tenant gets no name", async () => {
    const lonely = await makeUser(t.db);
    const r = await listTrail(lonely.ctx, trailQuery.parse({}));
    expect(r).toEqual({ items: [], nextCursor: null, names: {} });
  });
});
