/**
 * The vault over HTTP: admin routes (create, get, rotate, retire, rewrap) and
 * the agent broker route, called with real Requests against the test database
 * (injected as the process-wide handle lib/db.ts would open). The KEK comes
 * from the environment, as in production.
 */
import { randomBytes } from "node:crypto";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as credentialsRoute from "@/app/api/v1/agent/credentials/route";
import * as vaultRoute from "@/app/api/v1/admin/vault/route";
import * as entryRoute from "@/app/api/v1/admin/vault/[entryId]/route";
import * as rotateRoute from "@/app/api/v1/admin/vault/[entryId]/rotate/route";
import * as retireRoute from "@/app/api/v1/admin/vault/[entryId]/retire/route";
import * as rewrapRoute from "@/app/api/v1/admin/vault/rewrap/route";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
process.env.MANDATE_KEK_ID ??= "kek-test";
process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");

let t: TestDb;
let owner: MadeUser;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const SECRET = `api-route-secret-${randomBytes(8).toString("hex")}`;
const SECRET2 = `api-route-secret-v2-${randomBytes(8).toString("hex")}`;

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
const req = (method: string, path: string, key: string | null, body?: unknown) =>
  new NextRequest(`${base}${path}`, {
    method,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const noParams = { params: Promise.resolve({}) };
const params = (p: Record<string, string>) => ({ params: Promise.resolve(p) });

async function enrolled(serverIds: string[]) {
  const fleet = (await createFleet(owner.ctx, { name: uniq("Vault "), serverIds }))!;
  const tok = await createEnrollmentToken(owner.ctx, fleet.id);
  const res = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", null, { token: tok.token, name: uniq("edge-"), version: "1.0.0" }));
  expect(res.status).toBe(201);
  return ((await res.json()) as { agentKey: string }).agentKey;
}

describe("vault over HTTP", () => {
  it("admin routes never answer a secret; the broker answers it to the serving fleet only", async () => {
    const tenantA = (await makeTenant(t.db, owner.actor)).id;
    const tenantB = (await makeTenant(t.db, owner.actor)).id;
    const serverId = (await makeServer(owner.ctx, tenantA))!.id;
    const otherServer = (await makeServer(owner.ctx, tenantB))!.id;
    const ownerTok = (await createApiToken(owner.ctx, createTokenInput.parse({ name: uniq("ot-"), role: "owner" }))).token;
    const adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
    const bTok = (await createApiToken(adminB.ctx, createTokenInput.parse({ name: uniq("bt-"), role: "admin", tenantId: tenantB }))).token;

    // Create: 201, metadata only.
    const created = await vaultRoute.POST(
      req("POST", "/api/v1/admin/vault", ownerTok, { serverId, tenantId: tenantA, name: "key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: SECRET }),
      noParams,
    );
    const createdText = await created.text();
    expect(created.status, createdText).toBe(201);
    expect(createdText).not.toContain(SECRET);
    const entryId = (JSON.parse(createdText) as { id: string }).id;

    // Bad input: 422 naming the field, without the value.
    const bad = await vaultRoute.POST(
      req("POST", "/api/v1/admin/vault", ownerTok, { serverId, tenantId: tenantB, name: "x", kind: "basic", placement: { in: "query", name: "k" }, secret: { username: "u", password: SECRET } }),
      noParams,
    );
    expect(bad.status).toBe(422);
    const badBody = await bad.text();
    expect(badBody).toContain("placement.in");
    expect(badBody).not.toContain(SECRET);

    // Reads: the owner sees it, tenant B's admin gets 404.
    const got = await entryRoute.GET(req("GET", `/api/v1/admin/vault/${entryId}`, ownerTok), params({ entryId }));
    expect(got.status).toBe(200);
    expect(await got.text()).not.toContain(SECRET);
    expect((await entryRoute.GET(req("GET", `/api/v1/admin/vault/${entryId}`, bTok), params({ entryId }))).status).toBe(404);
    const listB = (await (await vaultRoute.GET(req("GET", "/api/v1/admin/vault", bTok), noParams)).json()) as { items: unknown[] };
    expect(listB.items).toEqual([]);

    // The broker: 401 without a key, 200 for the serving fleet, 403 for another fleet.
    const agentKey = await enrolled([serverId]);
    const otherKey = await enrolled([otherServer]);
    expect((await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", null, { serverId, tenantId: tenantA }))).status).toBe(401);
    const ok = await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", agentKey, { serverId, tenantId: tenantA }));
    expect(ok.status).toBe(200);
    expect(ok.headers.get("cache-control")).toBe("no-store");
    expect(await ok.json()).toMatchObject({ entryId, kind: "api_key", version: 1, secret: SECRET, ttlSeconds: 300, placement: { in: "header", name: "x-api-key" } });
    const other = await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", otherKey, { serverId, tenantId: tenantA }));
    expect(other.status).toBe(403);
    expect(await other.text()).not.toContain(SECRET);
    expect((await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", agentKey, { serverId }))).status).toBe(422);

    // Rotate with grace, then the old version is still served on request.
    const rotated = await rotateRoute.POST(req("POST", `/api/v1/admin/vault/${entryId}/rotate`, ownerTok, { secret: SECRET2, graceSeconds: 120 }), params({ entryId }));
    const rotatedText = await rotated.text();
    expect(rotated.status, rotatedText).toBe(200);
    expect(rotatedText).not.toContain(SECRET2);
    expect((await (await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", agentKey, { serverId, tenantId: tenantA }))).json()) as object).toMatchObject({ version: 2, secret: SECRET2 });
    expect((await (await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", agentKey, { serverId, tenantId: tenantA, version: 1 }))).json()) as object).toMatchObject({
      version: 1,
      secret: SECRET,
    });

    // Rewrap: owners only; nothing to do with one KEK.
    expect((await rewrapRoute.POST(req("POST", "/api/v1/admin/vault/rewrap", bTok), noParams)).status).toBe(403);
    const rw = await rewrapRoute.POST(req("POST", "/api/v1/admin/vault/rewrap", ownerTok), noParams);
    expect(await rw.json()).toEqual({ activeKekId: "kek-test", vaultVersions: 0, signingKeys: 0 });

    // Retire, then the broker answers 404 and a second retire 409.
    expect((await retireRoute.POST(req("POST", `/api/v1/admin/vault/${entryId}/retire`, ownerTok), params({ entryId }))).status).toBe(200);
    expect((await credentialsRoute.POST(req("POST", "/api/v1/agent/credentials", agentKey, { serverId, tenantId: tenantA }))).status).toBe(404);
    expect((await retireRoute.POST(req("POST", `/api/v1/admin/vault/${entryId}/retire`, ownerTok), params({ entryId }))).status).toBe(409);
  });
});
