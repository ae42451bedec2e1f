/**
 * Grants, clients and revocations over HTTP: the thin admin routes called
 * with real Requests and API tokens against the test database (injected as
 * the process-wide handle), the KEK from the environment as in production.
 */
import { randomBytes } from "node:crypto";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import * as grantsRoute from "@/app/api/v1/admin/grants/route";
import * as importRoute from "@/app/api/v1/admin/grants/import/route";
import * as grantRoute from "@/app/api/v1/admin/grants/[grantId]/route";
import * as revokeRoute from "@/app/api/v1/admin/grants/[grantId]/revoke/route";
import * as revocationsRoute from "@/app/api/v1/admin/revocations/route";
import * as clientsRoute from "@/app/api/v1/admin/clients/route";
import * as approvalRoute from "@/app/api/v1/admin/clients/approval/route";
import * as approveRoute from "@/app/api/v1/admin/clients/[clientId]/approve/route";
import * as blockRoute from "@/app/api/v1/admin/clients/[clientId]/block/route";
import { createTestDb, makeTenant, makeUser, uniq, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");

let t: TestDb;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
let tenantA: string;
let serverA: string;
let adminTok: string;
let auditorTok: string;
let otherTok: string;

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

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  const owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  const tenantB = (await makeTenant(t.db, owner.actor)).id;
  const admin = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  const auditor = await makeUser(t.db, { memberships: [[tenantA, "auditor"]] });
  const adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
  serverA = (await makeServer(admin.ctx, tenantA))!.id;
  adminTok = (await createApiToken(admin.ctx, createTokenInput.parse({ name: uniq("a-"), role: "admin", tenantId: tenantA }))).token;
  auditorTok = (await createApiToken(auditor.ctx, createTokenInput.parse({ name: uniq("r-"), role: "auditor", tenantId: tenantA }))).token;
  otherTok = (await createApiToken(adminB.ctx, createTokenInput.parse({ name: uniq("b-"), role: "admin", tenantId: tenantB }))).token;
});
afterAll(async () => {
  delete g.__mandateDb;
  await t?.close();
});

describe("grants over HTTP", () => {
  it("imports, lists, revokes once (201) and refuses twice (409); isolation and roles hold", async () => {
    const bad = await body<{ error: { issues: { path: string; message: string }[] } }>(
      await importRoute.POST(req("POST", "/api/v1/admin/grants/import", adminTok, { tenantId: tenantA, grants: [{ serverId: serverA, userId: "", clientId: "c1" }] }), noParams),
      422,
    );
    expect(bad.error.issues[0]!.path).toBe("grants.0.userId");
    const imported = await body(
      await importRoute.POST(req("POST", "/api/v1/admin/grants/import", adminTok, { tenantId: tenantA, grants: [{ serverId: serverA, userId: "ann", clientId: "c1", scopes: ["s"] }] }), noParams),
      200,
    );
    expect(imported).toEqual({ received: 1, created: 1, updated: 0 });

    const list = await body<{ items: { id: string; userId: string; status: string }[] }>(
      await grantsRoute.GET(req("GET", `/api/v1/admin/grants?tenantId=${tenantA}&userId=ann`, auditorTok), noParams),
      200,
    );
    expect(list.items.map((i) => [i.userId, i.status])).toEqual([["ann", "active"]]);
    const id = list.items[0]!.id;
    expect((await grantRoute.GET(req("GET", `/api/v1/admin/grants/${id}`, otherTok), params({ grantId: id }))).status).toBe(404);
    expect((await revokeRoute.POST(req("POST", `/api/v1/admin/grants/${id}/revoke`, auditorTok, { reason: "x" }), params({ grantId: id }))).status).toBe(403);
    expect((await revokeRoute.POST(req("POST", `/api/v1/admin/grants/${id}/revoke`, otherTok, { reason: "x" }), params({ grantId: id }))).status).toBe(404);

    const revoked = await body<{ grantsRevoked: number; revocation: { before: string } }>(
      await revokeRoute.POST(req("POST", `/api/v1/admin/grants/${id}/revoke`, adminTok, { reason: "left" }), params({ grantId: id })),
      201,
    );
    expect(revoked.grantsRevoked).toBe(1);
    const again = await body<{ error: { code: string; message: string } }>(await revokeRoute.POST(req("POST", `/api/v1/admin/grants/${id}/revoke`, adminTok, {}), params({ grantId: id })), 409);
    expect(again.error.message).toMatch(/already revoked/);

    const both = await revocationsRoute.POST(req("POST", "/api/v1/admin/revocations", adminTok, { tenantId: tenantA, userId: "ann", clientId: "c1" }), noParams);
    expect(both.status).toBe(422);
    await body(await revocationsRoute.POST(req("POST", "/api/v1/admin/revocations", adminTok, { tenantId: tenantA, clientId: "c1", reason: "rotate" }), noParams), 201);
    const history = await body<{ items: { reason: string }[] }>(await revocationsRoute.GET(req("GET", `/api/v1/admin/revocations?tenantId=${tenantA}`, auditorTok), noParams), 200);
    expect(history.items.map((r) => r.reason)).toEqual(["rotate", "left"]);
    const hidden = await body<{ items: unknown[] }>(await revocationsRoute.GET(req("GET", "/api/v1/admin/revocations", otherTok), noParams), 200);
    expect(hidden.items).toEqual([]);
  });

  it("lists clients, toggles approval and decides a client; auditors cannot", async () => {
    const clients = await body<{ requireClientApproval: boolean; items: { id: string; clientId: string; status: string }[] }>(
      await clientsRoute.GET(req("GET", `/api/v1/admin/clients?tenantId=${tenantA}`, auditorTok), noParams),
      200,
    );
    expect(clients.requireClientApproval).toBe(false);
    const c1 = clients.items.find((c) => c.clientId === "c1")!;
    expect(c1.status).toBe("pending");
    expect((await approvalRoute.PUT(req("PUT", "/api/v1/admin/clients/approval", auditorTok, { tenantId: tenantA, requireClientApproval: true }), noParams)).status).toBe(403);
    expect(await body(await approvalRoute.PUT(req("PUT", "/api/v1/admin/clients/approval", adminTok, { tenantId: tenantA, requireClientApproval: true }), noParams), 200)).toEqual({
      tenantId: tenantA,
      requireClientApproval: true,
    });
    expect((await approveRoute.POST(req("POST", `/api/v1/admin/clients/${c1.id}/approve`, otherTok), params({ clientId: c1.id }))).status).toBe(404);
    expect((await body<{ status: string }>(await approveRoute.POST(req("POST", `/api/v1/admin/clients/${c1.id}/approve`, adminTok), params({ clientId: c1.id })), 200)).status).toBe("approved");
    expect((await body<{ status: string }>(await blockRoute.POST(req("POST", `/api/v1/admin/clients/${c1.id}/block`, adminTok), params({ clientId: c1.id })), 200)).status).toBe("blocked");
    expect((await clientsRoute.GET(req("GET", `/api/v1/admin/clients?tenantId=${tenantA}`, otherTok), noParams)).status).toBe(404);
  });
});
