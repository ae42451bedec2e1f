/**
 * Issue 15: stored findings. The hourly findings job (and Recompute) stores
 * each tenant's and the fleet-wide findings in finding_results; the list, one
 * finding and the export read a scope's stored result while it is fresh, and
 * compute live otherwise. Through the real route handlers with API tokens:
 * the stored list equals a live computation made at the same instant; a
 * tenant admin never reads another tenant's stored findings (tenant from the
 * row, even when a row is tampered with); Recompute stores a newer
 * computed-at, is in the trail and is rate-limited; a stale row (age,
 * settings, an admin change of the tenant) falls back to a live computation;
 * a remedy of a stored finding that no longer holds is refused with 409.
 * Runs on PostgreSQL (DATABASE_URL) and PGlite.
 */
import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as listRoute from "@/app/api/v1/admin/findings/route";
import * as oneRoute from "@/app/api/v1/admin/findings/[findingId]/route";
import * as previewRoute from "@/app/api/v1/admin/findings/[findingId]/preview/route";
import * as remedyRoute from "@/app/api/v1/admin/findings/[findingId]/remedy/route";
import * as exportRoute from "@/app/api/v1/admin/findings/export/route";
import * as recomputeRoute from "@/app/api/v1/admin/findings/recompute/route";
import { auditEvents, findingResults, findingSettings, scopeMappings } from "@/db/schema";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import type { Kek } from "@/lib/bundles/signing";
import { computeFindings, type Finding } from "@/lib/findings/compute";
import { runFindingsJob } from "@/lib/findings/digest";
import { listFindings, loadSettings, RECOMPUTE_LIMIT } from "@/lib/findings/service";
import { revokeGrant } from "@/lib/grants/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { seedMonth, type SeededMonth } from "./least-privilege-fixture";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const H = 3_600_000;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let adminB: MadeUser;
let seed: SeededMonth;
let ownerTok: string;
let adminATok: string;
let adminBTok: string;
let jobNow: Date;

const base = "http://localhost:3000";
const req = (method: string, path: string, key: string, body?: unknown) =>
  new NextRequest(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const noParams = { params: Promise.resolve({}) };
const params = (p: Record<string, string>) => ({ params: Promise.resolve(p) });
async function body<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return (text ? JSON.parse(text) : null) as T;
}
interface ListAnswer {
  items: Finding[];
  scores: { tenantId: string }[];
  computedAt: string;
  source: "stored" | "live" | "mixed";
  scopes: { tenantId: string | null; source: "stored" | "live"; computedAt: string }[];
  recomputed?: number;
}
const list = async (tok: string, q = "") => body<ListAnswer>(await listRoute.GET(req("GET", `/api/v1/admin/findings${q}`, tok), noParams), 200);
const recompute = (tok: string, b: Record<string, unknown> = {}) => recomputeRoute.POST(req("POST", "/api/v1/admin/findings/recompute", tok, b), noParams);
const rowOf = async (scope: string) => (await t.db.select().from(findingResults).where(eq(findingResults.scope, scope)))[0];
const json = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  const a = await makeTenant(t.db, owner.actor, "Acme");
  const b = await makeTenant(t.db, owner.actor, "Beta");
  adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
  adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
  seed = await seedMonth(owner.ctx, a.id, b.id, kek);
  const tok = async (u: MadeUser, role: "owner" | "admin", tenantId?: string) => (await createApiToken(u.ctx, createTokenInput.parse({ name: uniq("t-"), role, tenantId }))).token;
  [ownerTok, adminATok, adminBTok] = await Promise.all([tok(owner, "owner"), tok(adminA, "admin", a.id), tok(adminB, "admin", b.id)]);
}, 120_000);

afterAll(async () => {
  delete g.__mandateDb;
  await t?.close();
});

describe("stored findings", () => {
  it("the hourly job stores each scope, and the stored list equals a live computation at the same instant", async () => {
    jobNow = new Date();
    const run = await runFindingsJob(t.db, { keyring: [kek], egress: { loopback: true, cidrs: [] }, now: jobNow });
    expect(run).not.toBeNull();
    const rows = await t.db.select().from(findingResults);
    expect(rows.map((r) => r.scope).sort()).toEqual([seed.tenantA, seed.tenantB, "global"].sort());
    for (const r of rows) {
      expect(r.computedAt.toISOString()).toBe(jobNow.toISOString());
      expect(r.computedBy).toBe("job");
      expect(r.unusedDays).toBe(30);
    }

    const tenantIds = [seed.tenantA, seed.tenantB].sort();
    const live = await computeFindings(t.db, { tenantIds, global: true, settings: await loadSettings(t.db, [...tenantIds, "global"]), now: jobNow });
    const stored = await list(ownerTok);
    expect(stored.source).toBe("stored");
    expect(stored.computedAt).toBe(jobNow.toISOString());
    expect(stored.scopes.map((s) => s.source)).toEqual(["stored", "stored", "stored"]);
    expect(stored.items.length).toBeGreaterThan(10);
    // Every finding, its evidence and the order; the scores.
    expect(stored.items).toEqual(json(live.findings));
    expect(stored.scores).toEqual(json(live.scores));

    const a = await list(adminATok);
    expect(a.source).toBe("stored");
    expect(a.items).toEqual(json(live.findings.filter((f) => f.tenantId === seed.tenantA)));
    // One finding by id from the store.
    const f = a.items[0]!;
    expect(await body<Finding>(await oneRoute.GET(req("GET", `/api/v1/admin/findings/${f.id}`, adminATok), params({ findingId: f.id })), 200)).toEqual(f);
  });

  it("a tenant admin never reads another tenant's stored findings (API), even from a tampered row", async () => {
    const b = await list(adminBTok);
    expect(b.source).toBe("stored");
    expect(b.items.length).toBeGreaterThan(0);
    expect(b.items.every((f) => f.tenantId === seed.tenantB)).toBe(true);
    expect(b.scopes.map((s) => s.tenantId)).toEqual([seed.tenantB]);
    const aItems = (await list(adminATok)).items;
    const aId = aItems[0]!.id;
    expect(JSON.stringify(b)).not.toContain(aId);
    await body(await listRoute.GET(req("GET", `/api/v1/admin/findings?tenantId=${seed.tenantA}`, adminBTok), noParams), 404);
    await body(await oneRoute.GET(req("GET", `/api/v1/admin/findings/${aId}`, adminBTok), params({ findingId: aId })), 404);
    await body(await oneRoute.GET(req("GET", `/api/v1/admin/findings/${aId}?tenantId=${seed.tenantA}`, adminBTok), params({ findingId: aId })), 404);
    await body(await previewRoute.POST(req("POST", `/api/v1/admin/findings/${aId}/preview`, adminBTok, { action: "narrow_mapping", tenantId: seed.tenantA }), params({ findingId: aId })), 404);
    await body(await recompute(adminBTok, { tenantId: seed.tenantA }), 404);
    const exp = await exportRoute.GET(req("GET", "/api/v1/admin/findings/export?format=ndjson", adminBTok), noParams);
    expect(exp.status).toBe(200);
    const lines = (await exp.text()).trim().split("\n");
    expect(lines.length).toBe(b.items.length);
    expect(lines.every((l) => (JSON.parse(l) as Finding).tenantId === seed.tenantB)).toBe(true);

    // B's row holding A's findings (as a bug or a hand edit could): B still sees none of them.
    const saved = (await rowOf(seed.tenantB))!;
    await t.db
      .update(findingResults)
      // A new computed-at: this process keeps parsed rows per computation, and this must be read from the row.
      .set({ findings: [...aItems, ...(saved.findings as Finding[])], computedAt: new Date() })
      .where(eq(findingResults.scope, seed.tenantB));
    const tampered = await list(adminBTok);
    expect(tampered.source).toBe("stored");
    expect(tampered.items.map((f) => f.id)).toEqual(b.items.map((f) => f.id));
    // A row whose tenant is not its scope is not read at all.
    await t.db.update(findingResults).set({ tenantId: seed.tenantA }).where(eq(findingResults.scope, seed.tenantB));
    const wrongTenant = await list(adminBTok);
    expect(wrongTenant.source).toBe("live");
    expect(wrongTenant.items.every((f) => f.tenantId === seed.tenantB)).toBe(true);
    await t.db.update(findingResults).set({ tenantId: saved.tenantId, findings: saved.findings, computedAt: saved.computedAt }).where(eq(findingResults.scope, seed.tenantB));
    expect((await list(adminBTok)).source).toBe("stored");
  });

  it("Recompute stores a newer computed-at for the caller's scopes only, is in the trail, and is limited per user", async () => {
    const r = await body<ListAnswer>(await recompute(ownerTok), 200);
    expect(r.source).toBe("live");
    expect(r.recomputed).toBe(3);
    expect(new Date(r.computedAt).getTime()).toBeGreaterThan(jobNow.getTime());
    for (const scope of [seed.tenantA, seed.tenantB, "global"]) {
      const row = (await rowOf(scope))!;
      expect(row.computedAt.toISOString()).toBe(r.computedAt);
      expect(row.computedBy).toBe(owner.user.id);
    }
    const after = await list(ownerTok);
    expect(after.source).toBe("stored");
    expect(after.computedAt).toBe(r.computedAt);
    expect(after.items).toEqual(r.items);

    // A tenant admin's Recompute touches its tenant's row only.
    const bBefore = (await rowOf(seed.tenantB))!.computedAt.toISOString();
    const ra = await body<ListAnswer>(await recompute(adminATok), 200);
    expect(ra.recomputed).toBe(1);
    expect(ra.items.every((f) => f.tenantId === seed.tenantA)).toBe(true);
    expect((await rowOf(seed.tenantA))!.computedAt.toISOString()).toBe(ra.computedAt);
    expect((await rowOf(seed.tenantB))!.computedAt.toISOString()).toBe(bBefore);

    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "findings.recompute"));
    expect(trail.map((e) => [e.tenantId, e.targetId, (e.after as { userId: string }).userId])).toEqual(
      expect.arrayContaining([
        [null, "all", owner.user.id],
        [seed.tenantA, seed.tenantA, adminA.user.id],
      ]),
    );
    expect(trail.length).toBe(2);

    // The owner's limit: RECOMPUTE_LIMIT in the window, then 429 (nothing recorded for the refused one).
    for (let i = 1; i < RECOMPUTE_LIMIT; i++) await body(await recompute(ownerTok), 200);
    const refused = await body<{ error: { code: string; message: string } }>(await recompute(ownerTok), 429);
    expect(refused.error.code).toBe("rate_limited");
    expect((await t.db.select().from(auditEvents).where(eq(auditEvents.action, "findings.recompute"))).length).toBe(RECOMPUTE_LIMIT + 1);
  });

  it("a stale store falls back to a live computation: too old, other settings, an admin change of the tenant", async () => {
    expect((await list(ownerTok)).source).toBe("stored");
    // Too old: computed more than the job interval (and slack) ago.
    const kept = (await t.db.select().from(findingResults)).map((r) => ({ scope: r.scope, at: r.computedAt }));
    await t.db.update(findingResults).set({ computedAt: new Date(Date.now() - 2 * H) });
    const old = await list(ownerTok);
    expect(old.source).toBe("live");
    expect(new Date(old.computedAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(old.items.length).toBeGreaterThan(10);
    for (const k of kept) await t.db.update(findingResults).set({ computedAt: k.at }).where(eq(findingResults.scope, k.scope));
    expect((await list(ownerTok)).source).toBe("stored");

    // Other settings than the stored computation's: that tenant live, the others stored.
    await t.db.insert(findingSettings).values({ id: seed.tenantA, tenantId: seed.tenantA }).onConflictDoNothing();
    await t.db.update(findingSettings).set({ unusedDays: 7 }).where(eq(findingSettings.id, seed.tenantA));
    const mixed = await list(ownerTok);
    expect(mixed.source).toBe("mixed");
    expect(mixed.scopes.find((s) => s.tenantId === seed.tenantA)!.source).toBe("live");
    expect(mixed.scopes.find((s) => s.tenantId === seed.tenantB)!.source).toBe("stored");
    expect(mixed.items.filter((f) => f.tenantId === seed.tenantA).every((f) => f.evidence.windowDays === 7)).toBe(true);
    await t.db.update(findingSettings).set({ unusedDays: 30 }).where(eq(findingSettings.id, seed.tenantA));
    expect((await list(ownerTok)).source).toBe("stored");

    // An admin change of the tenant (a grant revoked from elsewhere): its finding leaves the list at once.
    const before = await list(adminATok);
    const grant = before.items.find((f) => f.kind === "unused_grant")!;
    await revokeGrant(adminA.ctx, grant.subject.id, { reason: "least privilege" }, kek);
    const now = await list(ownerTok);
    expect(now.scopes.find((s) => s.tenantId === seed.tenantA)!.source).toBe("live");
    expect(now.scopes.find((s) => s.tenantId === seed.tenantB)!.source).toBe("stored");
    expect(now.items.some((f) => f.id === grant.id)).toBe(false);
  });

  it("a remedy of a stored finding re-checks it live: one that holds is previewed, one that no longer holds is refused with 409", async () => {
    await body(await recompute(adminATok, { tenantId: seed.tenantA }), 200);
    const stored = await list(adminATok);
    expect(stored.source).toBe("stored");
    const write = stored.items.find((f) => f.kind === "unused_scope_mapping" && f.subject.id === "tickets.write")!;
    const admin = stored.items.find((f) => f.kind === "unused_scope_mapping" && f.subject.id === "admin")!;
    expect(write.evidence.lists.unusedTools).toEqual(["close_ticket", "delete_ticket"]);

    const ok = await body<{ finding: Finding; impact: { allowToDeny: number } }>(
      await previewRoute.POST(req("POST", `/api/v1/admin/findings/${admin.id}/preview`, adminATok, { action: "narrow_mapping", tenantId: seed.tenantA }), params({ findingId: admin.id })),
      200,
    );
    expect(ok.finding.id).toBe(admin.id);
    expect(ok.impact.allowToDeny).toBe(0);

    // The unused tools of tickets.write are called with it now: the finding no longer holds, but the stored list (usage is
    // seen at the next run) still shows it.
    const at = Date.now() - 60_000;
    await insertDecisions(
      t.db,
      ["close_ticket", "delete_ticket"].map((tool, i) => ({
        atMs: at + i,
        fleetId: seed.fleetId,
        serverId: seed.ticketsServer,
        tenantId: seed.tenantA,
        userId: "alice",
        clientId: "cli-1",
        scopes: ["tickets.write"],
        tool,
        outcome: "allow" as const,
        args: {},
      })),
    );
    const still = await list(adminATok);
    expect(still.source).toBe("stored");
    expect(still.items.some((f) => f.id === write.id)).toBe(true);
    const mappingBefore = await t.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, seed.ticketsServer));
    const path = `/api/v1/admin/findings/${write.id}`;
    const refused = await body<{ error: { code: string; message: string } }>(
      await remedyRoute.POST(req("POST", `${path}/remedy`, adminATok, { action: "narrow_mapping", tenantId: seed.tenantA, acknowledgeFlips: true }), params({ findingId: write.id })),
      409,
    );
    expect(refused.error.code).toBe("conflict");
    expect(refused.error.message).toMatch(/no longer holds/);
    await body(await previewRoute.POST(req("POST", `${path}/preview`, adminATok, { action: "narrow_mapping", tenantId: seed.tenantA }), params({ findingId: write.id })), 409);
    // Nothing changed: no new mapping version, no remedy in the trail.
    expect(await t.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, seed.ticketsServer))).toEqual(mappingBefore);
    expect(
      await t.db
        .select()
        .from(auditEvents)
        .where(and(eq(auditEvents.action, "finding.remedy"), eq(auditEvents.targetId, write.id))),
    ).toEqual([]);

    // A live list (the service with a recompute) no longer has it.
    await body(await recompute(adminATok, { tenantId: seed.tenantA }), 200);
    expect((await listFindings(adminA.ctx, { tenantId: seed.tenantA })).items.some((f) => f.id === write.id)).toBe(false);
  });
});
