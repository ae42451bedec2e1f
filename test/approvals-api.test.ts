/**
 * Approvals over HTTP: the admin routes and the agent route called with real
 * Requests (API tokens, an enrolled agent key) against the test database.
 * Four-eyes, approver groups, tenant isolation from the loaded row, expiry,
 * one decision per request, the agent's fleet and tenant checks, and the
 * Slack-compatible webhook through the egress guard.
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eq } from "drizzle-orm";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as agentApprovalsRoute from "@/app/api/v1/agent/approvals/route";
import * as listRoute from "@/app/api/v1/admin/approvals/route";
import * as oneRoute from "@/app/api/v1/admin/approvals/[approvalId]/route";
import * as decideRoute from "@/app/api/v1/admin/approvals/[approvalId]/decide/route";
import * as groupsRoute from "@/app/api/v1/admin/approver-groups/route";
import * as membersRoute from "@/app/api/v1/admin/approver-groups/[groupId]/members/route";
import * as settingsRoute from "@/app/api/v1/admin/tenants/[tenantId]/approval-settings/route";
import { approvalRequests, users } from "@/db/schema";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey } from "@/lib/bundles/signing";
import { getEnv } from "@/lib/env";
import { createPolicy } from "@/lib/policy/service";
import { enrollAgent } from "@/lib/agents/service";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { callHash } from "@/lib/enforcement/approval";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");
// The webhook receiver below listens on loopback.
process.env.MANDATE_EGRESS_ALLOW = "loopback";

let t: TestDb;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
let tenantA: string;
let tenantB: string;
let serverA: string;
let serverB: string;
let agentKey: string;
let approverTok: string;
let requesterTok: string;
let outsiderAdminTok: string;
let otherTenantTok: string;
let adminTok: string;
let owner: MadeUser;
let hook: Server;
let policyId: string;
const hookBodies: unknown[] = [];

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
  return JSON.parse(text) as T;
}
const tokenOf = async (u: MadeUser, tenantId: string, role: "admin" | "auditor" = "admin") => (await createApiToken(u.ctx, createTokenInput.parse({ name: uniq("t-"), role, tenantId }))).token;
const ISS = "https://idp.example.com/";

/** What an agent reports for a call of (tenant, server) by carol. */
const requested = (tenantId: string, serverId: string, amount: number) => {
  const subject = { tenantId, serverId, tool: "transfer", user: `${ISS}#carol`, client: "bank-app" };
  return { kind: "requested", ...subject, callHash: callHash(subject, { amount }), args: { amount }, policies: [policyId], approvers: ["finance-approvers"], bundleRevision: 1 };
};
const report = (b: unknown, key = agentKey) => agentApprovalsRoute.POST(req("POST", "/api/v1/agent/approvals", key, b));

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  serverA = (await makeServer(owner.ctx, tenantA))!.id;
  serverB = (await makeServer(owner.ctx, tenantB))!.id;
  const fleet = await createFleet(owner.ctx, { name: uniq("Edge "), serverIds: [serverA] });
  // The bundle the agent decides with: an @approval forbid on server A (the control plane reads the approvers from it).
  policyId = (await createPolicy(owner.ctx, {
    tenantId: tenantA,
    serverId: serverA,
    name: "Ask finance",
    description: "",
    kind: "cedar",
    enabled: true,
    cedar: `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource);`,
  } as never))!.id;
  const kek = { id: getEnv().kek.id, key: getEnv().kek.key };
  await activeSigningKey(t.db, kek);
  await publishBundle(owner.ctx, fleet!.id, { note: "first" }, kek);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet!.id);
  agentKey = (await enrollAgent(t.db, { token: enrollment.token, name: "agent-1", version: "1" })).agentKey;

  const approver = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  const requester = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  await t.db.update(users).set({ oidcIssuer: ISS, oidcSubject: "carol" }).where(eq(users.id, requester.user.id));
  const outsiderAdmin = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  const otherTenant = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
  [approverTok, requesterTok, outsiderAdminTok, otherTenantTok] = await Promise.all([
    tokenOf(approver, tenantA),
    tokenOf(requester, tenantA),
    tokenOf(outsiderAdmin, tenantA),
    tokenOf(otherTenant, tenantB),
  ]);
  adminTok = await tokenOf(approver, tenantA);

  // Groups through the API: finance-approvers in A (approver, requester); a same-named group in B.
  const ga = await body<{ id: string }>(await groupsRoute.POST(req("POST", "/api/v1/admin/approver-groups", adminTok, { tenantId: tenantA, name: "finance-approvers" }), noParams), 201);
  await body(await membersRoute.POST(req("POST", `/api/v1/admin/approver-groups/${ga.id}/members`, adminTok, { email: approver.user.email }), params({ groupId: ga.id })), 201);
  await body(await membersRoute.POST(req("POST", `/api/v1/admin/approver-groups/${ga.id}/members`, adminTok, { email: requester.user.email }), params({ groupId: ga.id })), 201);
  const gb = await body<{ id: string }>(await groupsRoute.POST(req("POST", "/api/v1/admin/approver-groups", otherTenantTok, { tenantId: tenantB, name: "finance-approvers" }), noParams), 201);
  await body(await membersRoute.POST(req("POST", `/api/v1/admin/approver-groups/${gb.id}/members`, otherTenantTok, { email: otherTenant.user.email }), params({ groupId: gb.id })), 201);
  // A member must hold a role in the group's tenant.
  await body(await membersRoute.POST(req("POST", `/api/v1/admin/approver-groups/${ga.id}/members`, adminTok, { email: otherTenant.user.email }), params({ groupId: ga.id })), 422);

  hook = createHttpServer((r, res) => {
    const chunks: Buffer[] = [];
    r.on("data", (c: Buffer) => chunks.push(c));
    r.on("end", () => {
      hookBodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", () => r()));
}, 60_000);

afterAll(async () => {
  delete g.__mandateDb;
  await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  await t?.close();
});

describe("the agent files a request", () => {
  it("files once per open call, tells the webhook, and refuses servers outside its fleet or tenants the server does not admit", async () => {
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/services/T000/B000/secret`;
    const saved = await body<{ webhook: string }>(
      await settingsRoute.PUT(req("PUT", `/api/v1/admin/tenants/${tenantA}/approval-settings`, adminTok, { webhookUrl: hookUrl, requestTtlMinutes: 15 }), params({ tenantId: tenantA })),
      200,
    );
    expect(saved.webhook).toBe(`http://127.0.0.1:${(hook.address() as AddressInfo).port}`);
    // An auditor cannot change the settings.
    const auditorTok = await tokenOf(await makeUser(t.db, { memberships: [[tenantA, "auditor"]] }), tenantA, "auditor");
    await body(await settingsRoute.PUT(req("PUT", `/api/v1/admin/tenants/${tenantA}/approval-settings`, auditorTok, { requestTtlMinutes: 5 }), params({ tenantId: tenantA })), 403);

    const first = await body<{ id: string; url: string; status: string }>(await report(requested(tenantA, serverA, 5000)), 200);
    expect(first.url).toMatch(new RegExp(`/approvals/${first.id}$`));
    const again = await body<{ id: string }>(await report(requested(tenantA, serverA, 5000)), 200);
    expect(again.id).toBe(first.id);
    await expect.poll(() => hookBodies.length, { timeout: 5000 }).toBe(1);
    expect(hookBodies[0]).toMatchObject({ text: expect.stringContaining("Approval needed: transfer"), blocks: expect.any(Array) });
    expect(JSON.stringify(hookBodies[0])).not.toContain("5000"); // arguments never leave in the notification

    await body(await report(requested(tenantA, serverB, 5000)), 403); // not this agent's fleet
    await body(await report(requested(tenantB, serverA, 5000)), 403); // the server does not admit tenant B
    await body(await report({ ...requested(tenantA, serverA, 1), callHash: "zz" }), 422);
    // Approvers come from the bundle: a report naming a policy that asks no approval, or another revision, is refused.
    await body(await report({ ...requested(tenantA, serverA, 1), policies: ["pol_other"] }), 409);
    await body(await report({ ...requested(tenantA, serverA, 1), bundleRevision: 99 }), 409);
    const forged = await body<{ id: string }>(await report({ ...requested(tenantA, serverA, 7), approvers: ["anyone"] }), 200);
    expect((await t.db.select().from(approvalRequests).where(eq(approvalRequests.id, forged.id)))[0]!.approvers).toEqual(["finance-approvers"]);
    await body(await report(requested(tenantA, serverA, 1), "mda_bogus.key"), 401);
  });
});

describe("deciding", () => {
  const open = async (amount: number) => {
    const r = await body<{ id: string }>(await report(requested(tenantA, serverA, amount)), 200);
    return r.id;
  };

  it("four-eyes: the caller, by SSO identity, cannot approve their own call even in the group", async () => {
    const id = await open(5100);
    const res = await body<{ error: { message: string } }>(
      await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, requesterTok, { decision: "approve" }), params({ approvalId: id })),
      403,
    );
    expect(res.error.message).toMatch(/four-eyes/);
    const seen = await body<{ canDecide: boolean; ownRequest: boolean }>(await oneRoute.GET(req("GET", `/api/v1/admin/approvals/${id}`, requesterTok), params({ approvalId: id })), 200);
    expect(seen).toMatchObject({ canDecide: false, ownRequest: true });
  });

  it("only members of a named group decide; another tenant's same-named group sees nothing (404 from the loaded row)", async () => {
    const id = await open(5200);
    await body(await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, outsiderAdminTok, { decision: "approve" }), params({ approvalId: id })), 403);
    await body(await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, otherTenantTok, { decision: "approve" }), params({ approvalId: id })), 404);
    await body(await oneRoute.GET(req("GET", `/api/v1/admin/approvals/${id}`, otherTenantTok), params({ approvalId: id })), 404);
    const list = await body<{ items: { id: string }[] }>(await listRoute.GET(req("GET", `/api/v1/admin/approvals?tenantId=${tenantA}&view=all`, otherTenantTok), noParams), 200);
    expect(list.items).toEqual([]);
    const mine = await body<{ items: { id: string; canDecide: boolean }[] }>(await listRoute.GET(req("GET", `/api/v1/admin/approvals?view=mine`, approverTok), noParams), 200);
    expect(mine.items.find((i) => i.id === id)).toMatchObject({ canDecide: true });
    expect((await body<{ items: { id: string }[] }>(await listRoute.GET(req("GET", `/api/v1/admin/approvals?view=mine`, outsiderAdminTok), noParams), 200)).items).toEqual([]);
  });

  it("an approver decides once, with a reason and an optional similar-calls window; a second decision conflicts", async () => {
    const id = await open(5300);
    const out = await body<{ approval: { status: string; scope: string; approvalExpiresAt: string; decidedBy: string } }>(
      await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, approverTok, { decision: "approve", reason: "ok", similarMinutes: 30 }), params({ approvalId: id })),
      200,
    );
    expect(out.approval).toMatchObject({ status: "approved", scope: "similar" });
    expect(Date.parse(out.approval.approvalExpiresAt) - Date.now()).toBeGreaterThan(29 * 60_000);
    await body(await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, approverTok, { decision: "reject" }), params({ approvalId: id })), 409);
    await body(await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, approverTok, { decision: "approve", similarMinutes: 100000 }), params({ approvalId: id })), 422);
    // The agent reports execution; another agent-visible tenant cannot.
    const [row] = await t.db.select().from(approvalRequests).where(eq(approvalRequests.id, id));
    await body(await report({ kind: "executed", approvalId: id, tenantId: tenantB, callHash: row!.callHash }), 404);
    expect(await body<{ status: string }>(await report({ kind: "executed", approvalId: id, tenantId: tenantA, callHash: row!.callHash }), 200)).toMatchObject({ status: "executed" });
  });

  it("an expired request cannot be decided; the next call files a new one", async () => {
    const id = await open(5400);
    await t.db
      .update(approvalRequests)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(approvalRequests.id, id));
    const res = await body<{ error: { message: string } }>(
      await decideRoute.POST(req("POST", `/api/v1/admin/approvals/${id}/decide`, approverTok, { decision: "approve" }), params({ approvalId: id })),
      409,
    );
    expect(res.error.message).toMatch(/expired/);
    const next = await open(5400);
    expect(next).not.toBe(id);
  });
});
