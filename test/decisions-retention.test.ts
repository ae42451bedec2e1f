/**
 * Decision retention: the settings (GET/PATCH /api/v1/admin/settings and
 * their service), and the retention pass that creates partitions ahead and
 * drops whole old ones, recording a system trail row.
 */
import { randomBytes } from "node:crypto";
import { and, count, eq, sql } from "drizzle-orm";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, decisions, type Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { ingestDecisions } from "@/lib/decisions/ingest";
import { ensurePartitions } from "@/lib/decisions/partitions";
import { DEFAULT_RETENTION_DAYS, getSettings, runRetention, settingsInput, startRetentionJob, updateSettings } from "@/lib/decisions/retention";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import * as settingsRoute from "@/app/api/v1/admin/settings/route";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

const DAY = 86_400_000;
const idAt = (ms: number) => {
  const hex = ms.toString(16).padStart(12, "0") + "7" + randomBytes(2).toString("hex").slice(1) + (8 + (randomBytes(1)[0]! % 4)).toString(16) + randomBytes(8).toString("hex").slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};
const dayName = (ms: number) => `decisions_${new Date(ms).toISOString().slice(0, 10).replaceAll("-", "")}`;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

describe("decision retention", () => {
  let t: TestDb;
  let owner: MadeUser;
  let auditor: MadeUser;
  let tenantAdmin: MadeUser;
  let agent: Pick<Agent, "id" | "fleetId">;
  let serverId: string;
  const line = (id: string) => JSON.stringify({ id, serverId, method: "tools/call", tool: "list_tickets", outcome: "allow" });
  const parts = async () => {
    const r = (await t.db.execute(
      sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'decisions'`,
    )) as unknown as { rows?: { name: string }[] } | { name: string }[];
    return (Array.isArray(r) ? r : (r.rows ?? [])).map((x) => x.name).sort();
  };
  const trail = (action: string) => t.db.select().from(auditEvents).where(eq(auditEvents.action, action));

  beforeAll(async () => {
    t = await createTestDb();
    g.__mandateDb = Promise.resolve(t.handle);
    owner = await makeUser(t.db, { role: "owner" });
    auditor = await makeUser(t.db, { role: "auditor" });
    const tenant = await makeTenant(t.db, owner.actor);
    tenantAdmin = await makeUser(t.db, { memberships: [[tenant.id, "admin"]] });
    serverId = (await makeServer(owner.ctx, tenant.id))!.id;
    const fleet = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverId] }))!;
    const e = await enrollAgent(t.db, { token: (await createEnrollmentToken(owner.ctx, fleet.id)).token, name: uniq("agent-"), version: "t" });
    agent = { id: e.agentId, fleetId: e.fleetId };
  });
  afterAll(async () => {
    g.__mandateDb = undefined;
    await t.close();
  });

  it("settings: 90 days until set; owners change them, auditors only read, tenant admins neither", async () => {
    expect(await getSettings(auditor.ctx)).toEqual({ decisionRetentionDays: DEFAULT_RETENTION_DAYS, updatedAt: null });
    await expectAppError(getSettings(tenantAdmin.ctx), "forbidden");
    await expectAppError(updateSettings(auditor.ctx, { decisionRetentionDays: 30 }), "forbidden");
    await expectAppError(updateSettings(tenantAdmin.ctx, { decisionRetentionDays: 30 }), "forbidden");
    expect((await trail("settings.update")).length).toBe(0);

    const after = await updateSettings(owner.ctx, { decisionRetentionDays: 120 });
    expect(after.decisionRetentionDays).toBe(120);
    expect((await getSettings(auditor.ctx)).decisionRetentionDays).toBe(120);
    const [ev] = await trail("settings.update");
    expect(ev).toMatchObject({ actorId: owner.actor.id, targetType: "settings", before: { decisionRetentionDays: 90 }, after: { decisionRetentionDays: 120 } });

    for (const bad of [{ decisionRetentionDays: 0 }, { decisionRetentionDays: 3651 }, { decisionRetentionDays: 7.5 }, {}, { decisionRetentionDays: 30, other: 1 }]) {
      expect(settingsInput.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
    expect(settingsInput.safeParse({ decisionRetentionDays: 3650 }).success).toBe(true);
    await updateSettings(owner.ctx, { decisionRetentionDays: DEFAULT_RETENTION_DAYS });
  });

  it("settings over HTTP: auditor token reads (200) but PATCH is 403; tenant-admin token 403; bad value 422", async () => {
    const tok = async (m: MadeUser, role: "owner" | "admin" | "auditor", tenantId?: string) => (await createApiToken(m.ctx, createTokenInput.parse({ name: uniq("tok-"), role, tenantId }))).token;
    const call = (method: "GET" | "PATCH", key: string, body?: unknown) => {
      const req = new NextRequest("http://localhost:3000/api/v1/admin/settings", {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      return (method === "GET" ? settingsRoute.GET : settingsRoute.PATCH)(req, { params: Promise.resolve({}) });
    };
    const auditorKey = await tok(auditor, "auditor");
    const get = await call("GET", auditorKey);
    expect(get.status).toBe(200);
    expect(((await get.json()) as { decisionRetentionDays: number }).decisionRetentionDays).toBe(DEFAULT_RETENTION_DAYS);
    expect((await call("PATCH", auditorKey, { decisionRetentionDays: 30 })).status).toBe(403);
    const tenantId = [...tenantAdmin.actor.tenantRoles.keys()][0]!;
    const adminKey = await tok(tenantAdmin, "admin", tenantId);
    expect((await call("PATCH", adminKey, { decisionRetentionDays: 30 })).status).toBe(403);
    expect((await call("GET", adminKey)).status).toBe(403);
    const ownerKey = await tok(owner, "owner");
    const bad = await call("PATCH", ownerKey, { decisionRetentionDays: 0 });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as { error: { issues: { path: string }[] } }).error.issues[0]!.path).toBe("decisionRetentionDays");
    const ok = await call("PATCH", ownerKey, { decisionRetentionDays: 365 });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { decisionRetentionDays: number }).decisionRetentionDays).toBe(365);
    await updateSettings(owner.ctx, { decisionRetentionDays: DEFAULT_RETENTION_DAYS });
  });

  it("a pass creates a week of partitions ahead, drops whole partitions past the retention, keeps newer ones, and records it", async () => {
    const now = Date.now();
    const recent = idAt(now - 10 * DAY);
    const old = idAt(now - 40 * DAY);
    expect(await ingestDecisions(t.db, agent, [line(idAt(now)), line(recent), line(old)].join("\n"))).toEqual({ accepted: 3, duplicates: 0, quarantined: 0 });

    await updateSettings(owner.ctx, { decisionRetentionDays: 30 });
    const dropped = await runRetention(t.db, now);
    expect(dropped).toEqual([dayName(now - 40 * DAY)]);
    const after = await parts();
    for (let i = 0; i <= 7; i++) expect(after).toContain(dayName(now + i * DAY));
    expect(after).toContain(dayName(now - 10 * DAY));
    expect(after).not.toContain(dayName(now - 40 * DAY));
    const ids = (await t.db.select({ id: decisions.id }).from(decisions)).map((r) => r.id);
    expect(ids).toContain(recent);
    expect(ids).not.toContain(old);
    const runs = await trail("decisions.retention");
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ actorType: "system", tenantId: null, after: { retentionDays: 30, dropped: [dayName(now - 40 * DAY)] } });

    // Nothing left to drop: no trail row.
    expect(await runRetention(t.db, now)).toEqual([]);
    expect(await trail("decisions.retention")).toHaveLength(1);

    // Past the retention now: quarantined, the dropped partition is not recreated.
    expect(await ingestDecisions(t.db, agent, line(idAt(now - 35 * DAY)))).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    expect(await parts()).not.toContain(dayName(now - 35 * DAY));
    // The retention raised again: the same old day is accepted (the partition is made again).
    await updateSettings(owner.ctx, { decisionRetentionDays: 90 });
    expect(await ingestDecisions(t.db, agent, line(idAt(now - 40 * DAY)))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
    expect(await parts()).toContain(dayName(now - 40 * DAY));
  });

  it("two passes at once (two processes sharing the database) drop a partition once and record it once", async () => {
    const when = Date.now() - 70 * DAY;
    await ensurePartitions(t.db, [when]);
    await updateSettings(owner.ctx, { decisionRetentionDays: 60 });
    const before = (await trail("decisions.retention")).length;
    const [a, b] = await Promise.all([runRetention(t.db), runRetention(t.db)]);
    expect([...a, ...b]).toEqual([dayName(when)]);
    expect(await trail("decisions.retention")).toHaveLength(before + 1);
  });

  it("the job runs on its timer", async () => {
    const when = Date.now() - 50 * DAY;
    await ensurePartitions(t.db, [when]);
    await t.db.execute(
      sql.raw(
        `insert into decisions (id, at, agent_id, fleet_id, server_id, method, outcome) values ('${idAt(when)}', '${new Date(when).toISOString()}', 'agt_x', 'flt_x', 'srv_x', 'tools/call', 'deny')`,
      ),
    );
    await updateSettings(owner.ctx, { decisionRetentionDays: 45 });
    const stop = startRetentionJob(t.db, 50);
    try {
      const deadline = Date.now() + 10_000;
      while ((await parts()).includes(dayName(when)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      stop();
    }
    expect(await parts()).not.toContain(dayName(when));
    const n = Number(
      (
        await t.db
          .select({ n: count() })
          .from(auditEvents)
          .where(and(eq(auditEvents.action, "decisions.retention"), eq(auditEvents.actorType, "system")))
      )[0]!.n,
    );
    expect(n).toBeGreaterThanOrEqual(2);
  });
});
