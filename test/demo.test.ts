/**
 * The live demo `npm start` brings up (issue 14.1): the seed through the
 * domain services against a fresh database and the real sandbox upstream;
 * the published bundle decides the demo trickle's calls as the demo promises
 * (allowed reads and writes, a payroll ticket and a project deletion denied
 * by policy, the unapproved client denied); a second seed duplicates nothing;
 * an owner's removal deletes the tenant and all that hangs off it, is in the
 * trail, and keeps the demo from coming back.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, decisions, fleets, oauthClients, policies, servers, tenantIssuers, tenants } from "@/db/schema";
import { activeBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { DEMO_CLIENT_ID, DEMO_UNAPPROVED_CLIENT_ID, demoAgentEnrollment, demoRemoved, demoStatus, removeDemo, seedDemo, type DemoOptions } from "@/lib/demo/service";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decide, decisionView } from "@/lib/enforcement/decide";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { expectAppError } from "./expect";
import { startSandbox, type Sandbox } from "./sandbox";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const ISSUER = "http://127.0.0.1:3101";

describe("demo seed", () => {
  let t: TestDb;
  let sandbox: Sandbox;
  let owner: MadeUser;
  let opts: DemoOptions;

  beforeAll(async () => {
    [t, sandbox] = await Promise.all([createTestDb(), startSandbox()]);
    owner = await makeUser(t.db, { role: "owner" });
    opts = { upstreamUrl: sandbox.url, issuer: ISSUER, resourceUri: "http://127.0.0.1:3102/mcp" };
  });
  afterAll(async () => {
    await sandbox?.stop();
    await t?.close();
  });

  it("a seed that stopped half-way (tenant only) is started over on the next start", async () => {
    const half = await makeTenant(t.db, owner.actor, "Demo (sample data)");
    expect(half!.slug).toBe("demo-sample-data");
    const s = await seedDemo(t.db, kek, opts);
    expect(s).toMatchObject({ status: "active", created: true });
    expect(s.status === "active" && s.tenantId).not.toBe(half!.id);
    await removeDemo(owner.ctx);
    await t.db.delete(auditEvents).where(eq(auditEvents.action, "demo.remove"));
  });

  it("seeds a marked tenant whose published bundle decides the demo calls as promised, and a second seed duplicates nothing", async () => {
    const s = await seedDemo(t.db, kek, opts);
    if (s.status !== "active") throw new Error("expected an active demo");
    expect(s.created).toBe(true);
    const [tenant] = await t.db.select().from(tenants).where(eq(tenants.id, s.tenantId));
    expect(tenant).toMatchObject({ name: "Demo (sample data)", slug: "demo-sample-data", requireClientApproval: true });
    // The tenant trusts the sandbox AS, mapping its `tenant` claim.
    const [trust] = await t.db.select().from(tenantIssuers).where(eq(tenantIssuers.tenantId, s.tenantId));
    expect(trust).toMatchObject({ issuer: ISSUER, tenantMapping: { mode: "claim", claim: "tenant", values: [s.tenantId, "ten_demo"] } });

    const content = (await activeBundle(t.db, s.fleetId))!.content as unknown as BundleContent;
    const view = decisionView(content);
    const now = Math.floor(Date.now() / 1000);
    const call = (tool: string, args: Record<string, unknown>, client = DEMO_CLIENT_ID, scopes = ["tickets:read", "tickets:write", "tickets:admin"]) =>
      decide(view, {
        method: "tools/call",
        serverId: s.serverId,
        tool,
        principal: { issuer: ISSUER, tenantId: s.tenantId, user: client, client, scopes, groups: [], actors: [], iat: now - 60, exp: now + 3600 },
        args,
      });

    expect(call("list_tickets", {}).decision).toBe("allow");
    expect(call("get_ticket", { id: "T-1" }).decision).toBe("allow");
    expect(call("create_ticket", { title: "Printer on fire", project: "support" }).decision).toBe("allow");
    const byName = (name: string) => Object.entries(content.policies).find(([, p]) => p.name === name)![0];
    expect(call("create_ticket", { title: "Raise for me", project: "payroll" })).toMatchObject({ decision: "deny", stage: "policy", determining: [byName("No tickets in the payroll project")] });
    expect(call("delete_project", { project: "support", confirm: true })).toMatchObject({ decision: "deny", stage: "policy", determining: [byName("Projects are never deleted by an assistant")] });
    expect(call("list_tickets", {}, DEMO_UNAPPROVED_CLIENT_ID)).toMatchObject({ decision: "deny", stage: "client" });
    expect(call("create_ticket", { title: "x", project: "support" }, DEMO_CLIENT_ID, ["tickets:read"]).decision).toBe("deny");

    // The agent can enroll with a one-time token and verify the bundle with the published keys.
    const enrollment = await demoAgentEnrollment(t.db, s.fleetId);
    expect(enrollment.token).toMatch(/^mde_/);
    expect(enrollment.keys.keys.length).toBeGreaterThan(0);

    const again = await seedDemo(t.db, kek, opts);
    expect(again).toEqual({ ...s, created: false });
    expect(await t.db.select().from(tenants).where(eq(tenants.slug, "demo-sample-data"))).toHaveLength(1);
    expect(await t.db.select().from(servers).where(eq(servers.tenantId, s.tenantId))).toHaveLength(1);
    expect(await t.db.select().from(policies).where(eq(policies.tenantId, s.tenantId))).toHaveLength(2);
    expect(await demoStatus(t.db)).toMatchObject({ active: true, tenantId: s.tenantId, resourceUri: opts.resourceUri });
  });

  it("only an owner removes it; removal deletes the tenant and what hangs off it, is in the trail, and a removed demo stays removed", async () => {
    const s = await seedDemo(t.db, kek, opts);
    if (s.status !== "active") throw new Error("expected an active demo");
    // An admin of another tenant (and of the demo tenant itself) may not remove it.
    const other = await makeTenant(t.db, owner.actor);
    const admin = await makeUser(t.db, {
      role: "member",
      memberships: [
        [s.tenantId, "admin"],
        [other!.id, "admin"],
      ],
    });
    await expectAppError(removeDemo(admin.ctx), "forbidden");
    // A decision of the demo tenant is demo data too; another tenant's is not touched.
    await insertDecisions(
      t.db,
      [s.tenantId, other.id].map((tenantId) => ({ atMs: Date.now(), tenantId, serverId: s.serverId, fleetId: s.fleetId, outcome: "deny" as const })),
    );

    expect(await removeDemo(owner.ctx)).toEqual({ removed: true });
    expect(await t.db.select().from(tenants).where(eq(tenants.id, s.tenantId))).toHaveLength(0);
    expect(await t.db.select().from(servers).where(eq(servers.id, s.serverId))).toHaveLength(0);
    expect(await t.db.select().from(fleets).where(eq(fleets.id, s.fleetId))).toHaveLength(0);
    expect(await t.db.select().from(oauthClients).where(eq(oauthClients.tenantId, s.tenantId))).toHaveLength(0);
    expect((await t.db.select().from(decisions)).map((d) => d.tenantId)).toEqual([other.id]);
    const [event] = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "demo.remove"));
    expect(event).toMatchObject({ actorId: owner.user.id, targetId: s.tenantId });
    expect(await t.db.select().from(tenants).where(eq(tenants.id, other.id))).toHaveLength(1);

    expect(await demoRemoved(t.db)).toBe(true);
    expect(await seedDemo(t.db, kek, opts)).toEqual({ status: "removed" });
    expect(await t.db.select().from(tenants).where(eq(tenants.slug, "demo-sample-data"))).toHaveLength(0);
    expect(await demoStatus(t.db)).toEqual({ active: false, removed: true });
  });
});
