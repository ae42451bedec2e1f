/** The tenant trust API over HTTP (route handlers, real PostgreSQL): validation, tenant scoping, the trail. */
import { randomBytes } from "node:crypto";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { auditEvents } from "@/db/schema";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import * as listRoute from "@/app/api/v1/admin/tenants/[tenantId]/issuers/route";
import * as oneRoute from "@/app/api/v1/admin/tenants/[tenantId]/issuers/[issuerId]/route";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");

let t: TestDb;
let owner: MadeUser;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  delete g.__mandateDb;
  await t?.close();
});

const base = "http://localhost:3000";
const req = (method: string, path: string, key: string, body?: unknown) =>
  new NextRequest(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const params = (p: Record<string, string>) => ({ params: Promise.resolve(p) });

describe("tenant trusted issuers over HTTP", () => {
  it("an admin manages its own tenant's trust; another tenant's admin gets 404; bad input is 422 by field", async () => {
    const a = (await makeTenant(t.db, owner.actor)).id;
    const b = (await makeTenant(t.db, owner.actor)).id;
    const adminA = await makeUser(t.db, { memberships: [[a, "admin"]] });
    const adminB = await makeUser(t.db, { memberships: [[b, "admin"]] });
    const auditorA = await makeUser(t.db, { memberships: [[a, "auditor"]] });
    const tok = async (u: MadeUser, tenantId: string, role: "admin" | "auditor" = "admin") => (await createApiToken(u.ctx, createTokenInput.parse({ name: uniq("t-"), role, tenantId }))).token;
    const [ka, kb, kaud] = await Promise.all([tok(adminA, a), tok(adminB, b), tok(auditorA, a, "auditor")]);
    const path = `/api/v1/admin/tenants/${a}/issuers`;
    const body = {
      issuer: "https://login.example.com/realms/acme",
      tenantMapping: { mode: "claim", claim: "realm_access.roles", values: ["acme"] },
      requireTyp: "at+jwt",
      claims: { groups: "realm_access.roles" },
    };

    const created = await listRoute.POST(req("POST", path, ka, body), params({ tenantId: a }));
    const text = await created.text();
    expect(created.status, text).toBe(201);
    const entry = JSON.parse(text) as { id: string; tenantId: string; discovery: boolean; algorithms: string[]; claims: Record<string, string> };
    expect(entry).toMatchObject({ tenantId: a, discovery: true, algorithms: ["RS256", "ES256"], claims: { user: "sub", client: "client_id", scopes: "scope", groups: "realm_access.roles" } });
    const dup = await listRoute.POST(req("POST", path, ka, body), params({ tenantId: a }));
    expect(dup.status).toBe(409);

    // Validation: plain http off loopback, HMAC, an empty value list, an unknown mode, a typ other than at+jwt.
    for (const [bad, field] of [
      [{ ...body, jwksUri: "http://keys.example.com/jwks" }, "jwksUri"],
      [{ ...body, algorithms: ["HS256"] }, "algorithms"],
      [{ ...body, tenantMapping: { mode: "claim", claim: "tid", values: [] } }, "tenantMapping"],
      [{ ...body, tenantMapping: { mode: "anyone" } }, "tenantMapping"],
      [{ ...body, requireTyp: "JWT" }, "requireTyp"],
      [{ ...body, discovery: false }, "jwksUri"],
    ] as const) {
      const r = await listRoute.POST(req("POST", path, ka, bad), params({ tenantId: a }));
      const out = await r.text();
      expect(r.status, out).toBe(422);
      expect(out).toContain(field);
    }

    // Other tenants' admins neither read nor write A's trust; A's auditor reads but cannot write.
    expect((await listRoute.GET(req("GET", path, kb), params({ tenantId: a }))).status).toBe(404);
    expect((await oneRoute.DELETE(req("DELETE", `${path}/${entry.id}`, kb), params({ tenantId: a, issuerId: entry.id }))).status).toBe(404);
    expect((await oneRoute.DELETE(req("DELETE", `/api/v1/admin/tenants/${b}/issuers/${entry.id}`, kb), params({ tenantId: b, issuerId: entry.id }))).status).toBe(404);
    const listed = await listRoute.GET(req("GET", path, kaud), params({ tenantId: a }));
    expect(((await listed.json()) as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([entry.id]);
    expect((await listRoute.POST(req("POST", path, kaud, { ...body, issuer: "https://other.example.com" }), params({ tenantId: a }))).status).toBe(403);

    // Replace, then delete; each change is in the trail under tenant A.
    const put = await oneRoute.PUT(req("PUT", `${path}/${entry.id}`, ka, { ...body, tenantMapping: { mode: "issuer" }, requireTyp: null }), params({ tenantId: a, issuerId: entry.id }));
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ tenantMapping: { mode: "issuer" }, requireTyp: null });
    expect((await oneRoute.DELETE(req("DELETE", `${path}/${entry.id}`, ka), params({ tenantId: a, issuerId: entry.id }))).status).toBe(204);
    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, entry.id));
    expect(trail.map((e) => [e.action, e.tenantId]).sort()).toEqual([
      ["tenant.issuer.create", a],
      ["tenant.issuer.delete", a],
      ["tenant.issuer.update", a],
    ]);
  });
});
