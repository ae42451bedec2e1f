/**
 * The agent API and the fleet admin routes over HTTP: the route handlers are
 * called with real Requests against the test database (injected as the
 * process-wide handle that lib/db.ts would open).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { performance } from "node:perf_hooks";
import { eq } from "drizzle-orm";
import { NextRequest } from "next/server";
import { agents } from "@/db/schema";
import { stopBundleListener, waiterCount } from "@/lib/agents/bundle-waiter";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import * as bundleRoute from "@/app/api/v1/agent/bundle/route";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as heartbeatRoute from "@/app/api/v1/agent/heartbeat/route";
import * as fleetsRoute from "@/app/api/v1/admin/fleets/route";
import * as fleetRoute from "@/app/api/v1/admin/fleets/[fleetId]/route";
import * as tokensRoute from "@/app/api/v1/admin/fleets/[fleetId]/enrollment-tokens/route";
import * as tokenRoute from "@/app/api/v1/admin/fleets/[fleetId]/enrollment-tokens/[tokenId]/route";
import * as agentRoute from "@/app/api/v1/admin/agents/[agentId]/route";
import * as rotateRoute from "@/app/api/v1/admin/agents/[agentId]/rotate-key/route";
import { createTestDb, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { makeServer, publishBundle } from "./fleet-helpers";
import { makeTenant } from "./db";

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
  if (t) await stopBundleListener(t.handle);
  await t?.close();
});

const base = "http://localhost:3000";
function req(method: string, path: string, opts: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body: string | undefined;
  if (opts.body !== undefined || opts.raw !== undefined) {
    body = opts.raw ?? JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  return new NextRequest(`${base}${path}`, { method, headers, body, signal: opts.signal });
}
const noParams = { params: Promise.resolve({}) };
const params = (p: Record<string, string>) => ({ params: Promise.resolve(p) });

async function enrolledAgent() {
  const fleet = (await createFleet(owner.ctx, { name: uniq("Api ") }))!;
  const tok = await createEnrollmentToken(owner.ctx, fleet.id);
  const res = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { body: { token: tok.token, name: uniq("edge-"), version: "1.0.0" } }));
  expect(res.status).toBe(201);
  const out = (await res.json()) as { agentId: string; fleetId: string; agentKey: string };
  return { fleet, ...out };
}

describe("agent API", () => {
  it("POST /enroll: 201 once, then 401 'already used' with the agent realm", async () => {
    const fleet = (await createFleet(owner.ctx, { name: uniq("Api ") }))!;
    const tok = await createEnrollmentToken(owner.ctx, fleet.id);
    const first = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { body: { token: tok.token, name: "edge", version: "1" } }));
    expect(first.status).toBe(201);
    const body = (await first.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(["agentId", "agentKey", "fleetId"]);
    expect(body.fleetId).toBe(fleet.id);
    expect(first.headers.get("cache-control")).toBe("no-store");

    const again = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { body: { token: tok.token, name: "edge", version: "1" } }));
    expect(again.status).toBe(401);
    expect(again.headers.get("www-authenticate")).toBe('Bearer realm="mandate-agent"');
    expect(await again.json()).toEqual({ error: { code: "unauthenticated", message: "Enrollment token already used" } });

    const invalid = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { body: { name: "edge" } }));
    expect(invalid.status).toBe(422);
    const notJson = await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { raw: "{", headers: { "content-type": "application/json" } }));
    expect(notJson.status).toBe(400);
  });

  it("401 with WWW-Authenticate for a missing, malformed, admin or revoked key", async () => {
    const { agentId, agentKey } = await enrolledAgent();
    const ownerTok = await createApiToken(owner.ctx, createTokenInput.parse({ name: uniq("ot-"), role: "owner" }));
    for (const key of [undefined, "nope", ownerTok.token, agentKey.slice(0, -1)]) {
      const res = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key }));
      expect(res.status, String(key)).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="mandate-agent"');
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    }
    const hb = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { body: { version: "1" } }));
    expect(hb.status).toBe(401);
    expect(hb.headers.get("www-authenticate")).toBe('Bearer realm="mandate-agent"');
    // An admin session or API token is no agent credential, and an agent key is no admin credential.
    const asAdmin = await fleetsRoute.GET(req("GET", "/api/v1/admin/fleets", { key: agentKey }), noParams);
    expect(asAdmin.status).toBe(401);

    const del = await agentRoute.DELETE(req("DELETE", `/api/v1/admin/agents/${agentId}`, { key: ownerTok.token }), params({ agentId }));
    expect(del.status).toBe(204);
    const revoked = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey }));
    expect(revoked.status).toBe(401);
  });

  it("GET /bundle: 404 before the first publish; then the bundle with ETag; 304 on If-None-Match or after=", async () => {
    const { fleet, agentId, agentKey } = await enrolledAgent();
    const none = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey }));
    expect(none.status).toBe(404);
    expect(await none.json()).toEqual({ error: { code: "not_found", message: "No bundle published for this fleet yet" } });

    await t.db
      .update(agents)
      .set({ lastSeenAt: new Date(0) })
      .where(eq(agents.id, agentId));
    const b1 = await publishBundle(t.db, fleet.id, 1);
    const res = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey }));
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe(`"${b1.sha256}"`);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await res.json()).toEqual({ revision: 1, sha256: b1.sha256, keyId: "kid-test", signature: "sig.1", content: b1.content });
    // Every call marks the agent seen.
    const [seen] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(Date.now() - seen!.lastSeenAt!.getTime()).toBeLessThan(60_000);

    for (const inm of [`"${b1.sha256}"`, `W/"${b1.sha256}"`, `"other", "${b1.sha256}"`, "*"]) {
      const nm = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey, headers: { "if-none-match": inm } }));
      expect(nm.status, inm).toBe(304);
      expect(nm.headers.get("etag")).toBe(`"${b1.sha256}"`);
      expect(await nm.text()).toBe("");
    }
    expect((await bundleRoute.GET(req("GET", "/api/v1/agent/bundle?after=1", { key: agentKey }))).status).toBe(304);
    expect((await bundleRoute.GET(req("GET", "/api/v1/agent/bundle?after=0", { key: agentKey }))).status).toBe(200);
    expect((await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey, headers: { "if-none-match": '"stale"' } }))).status).toBe(200);
    for (const bad of ["wait=61", "wait=-1", "wait=x", "after=-1"]) {
      expect((await bundleRoute.GET(req("GET", `/api/v1/agent/bundle?${bad}`, { key: agentKey }))).status, bad).toBe(422);
    }
  });

  it("an agent only ever gets its own fleet's bundle", async () => {
    const a = await enrolledAgent();
    const b = await enrolledAgent();
    const ba = await publishBundle(t.db, a.fleet.id, 1);
    const bb = await publishBundle(t.db, b.fleet.id, 1);
    const ra = (await (await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: a.agentKey }))).json()) as { sha256: string };
    const rb = (await (await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: b.agentKey }))).json()) as { sha256: string };
    expect(ra.sha256).toBe(ba.sha256);
    expect(rb.sha256).toBe(bb.sha256);
    // Query parameters cannot select another fleet.
    const sneaky = await bundleRoute.GET(req("GET", `/api/v1/agent/bundle?fleetId=${b.fleet.id}&fleet=${b.fleet.id}`, { key: a.agentKey }));
    expect(((await sneaky.json()) as { sha256: string }).sha256).toBe(ba.sha256);
  });

  it("long poll: ?wait holds the request until a publish (200 within a second) or the end of the wait (304)", async () => {
    const { fleet, agentKey } = await enrolledAgent();
    const b1 = await publishBundle(t.db, fleet.id, 1);
    const etag = `"${b1.sha256}"`;

    // Nothing published: 304 after about the wait.
    let start = performance.now();
    const idle = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=1", { key: agentKey, headers: { "if-none-match": etag } }));
    expect(idle.status).toBe(304);
    expect(performance.now() - start).toBeGreaterThanOrEqual(950);

    // A publish during the wait answers at once with the new bundle.
    start = performance.now();
    const held = bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=30", { key: agentKey, headers: { "if-none-match": etag } }));
    for (let i = 0; i < 200 && waiterCount(t.handle, fleet.id) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const published = performance.now();
    const b2 = await publishBundle(t.db, fleet.id, 2);
    const res = await held;
    const latency = performance.now() - published;
    console.log(`[long poll] HTTP route (${t.driver}): answered ${latency.toFixed(1)} ms after publish start`);
    expect(res.status).toBe(200);
    expect(latency).toBeLessThan(1000);
    expect(res.headers.get("etag")).toBe(`"${b2.sha256}"`);
    expect(((await res.json()) as { revision: number }).revision).toBe(2);

    // ?after= works the same way.
    const heldAfter = bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=30&after=2", { key: agentKey }));
    for (let i = 0; i < 200 && waiterCount(t.handle, fleet.id) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await publishBundle(t.db, fleet.id, 3);
    const r3 = await heldAfter;
    expect(r3.status).toBe(200);
    expect(((await r3.json()) as { revision: number }).revision).toBe(3);
    expect(performance.now() - start).toBeLessThan(10_000);
  });

  it("long poll: one publish answers every held request of the fleet with the same bundle", async () => {
    const { fleet, agentKey } = await enrolledAgent();
    const b1 = await publishBundle(t.db, fleet.id, 1);
    const held = Array.from({ length: 25 }, () => bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=30", { key: agentKey, headers: { "if-none-match": `"${b1.sha256}"` } })));
    for (let i = 0; i < 300 && waiterCount(t.handle, fleet.id) < held.length; i++) await new Promise((r) => setTimeout(r, 10));
    expect(waiterCount(t.handle, fleet.id)).toBe(held.length);
    const published = performance.now();
    const b2 = await publishBundle(t.db, fleet.id, 2);
    const answers = await Promise.all(held);
    expect(performance.now() - published).toBeLessThan(1000);
    expect(answers.map((r) => r.status)).toEqual(held.map(() => 200));
    const bodies = await Promise.all(answers.map((r) => r.text()));
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0]!)).toMatchObject({ revision: 2, sha256: b2.sha256 });
  });

  it("long poll before the first publish waits for it; a client abort ends the wait", async () => {
    const { fleet, agentKey } = await enrolledAgent();
    const held = bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=30", { key: agentKey }));
    for (let i = 0; i < 200 && waiterCount(t.handle, fleet.id) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const b1 = await publishBundle(t.db, fleet.id, 1);
    const res = await held;
    expect(res.status).toBe(200);
    expect(res.headers.get("etag")).toBe(`"${b1.sha256}"`);

    const empty = await enrolledAgent();
    const idle = await bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=1", { key: empty.agentKey }));
    expect(idle.status).toBe(404);

    const ac = new AbortController();
    const start = performance.now();
    const aborted = bundleRoute.GET(req("GET", "/api/v1/agent/bundle?wait=30", { key: empty.agentKey, signal: ac.signal }));
    for (let i = 0; i < 200 && waiterCount(t.handle, empty.fleet.id) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    expect((await aborted).status).toBe(404);
    expect(performance.now() - start).toBeLessThan(5000);
    expect(waiterCount(t.handle, empty.fleet.id)).toBe(0);
  });

  it("POST /heartbeat: 204 and stored; 422 on bad input; 413 over 1 MiB; 415 without JSON", async () => {
    const { agentId, agentKey } = await enrolledAgent();
    const ok = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { key: agentKey, body: { version: "2.0.0", bundleRevision: 3, counters: { allowed: 5 }, errors: ["boom"] } }));
    expect(ok.status).toBe(204);
    expect(await ok.text()).toBe("");
    const [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row).toMatchObject({ version: "2.0.0", bundleRevision: 3, counters: { allowed: 5 }, lastError: "boom" });

    const bad = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { key: agentKey, body: { version: "2", counters: { allowed: -1 } } }));
    expect(bad.status).toBe(422);
    const issues = ((await bad.json()) as { error: { issues: { path: string }[] } }).error.issues;
    expect(issues.map((i) => i.path)).toEqual(["counters.allowed"]);

    const big = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { key: agentKey, raw: JSON.stringify({ version: "2", pad: "x".repeat(1024 * 1024) }) }));
    expect(big.status).toBe(413);
    // A body just under the cap is read (and then judged by the schema: unknown keys are dropped).
    const under = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { key: agentKey, raw: JSON.stringify({ version: "2", pad: "x".repeat(1000 * 1024) }) }));
    expect(under.status).toBe(204);
    const text = await heartbeatRoute.POST(req("POST", "/api/v1/agent/heartbeat", { key: agentKey, raw: "version=2", headers: { "content-type": "text/plain" } }));
    expect(text.status).toBe(415);
  });
});

describe("fleet admin routes", () => {
  it("owner token: create, read, patch, mint and revoke tokens, rotate and revoke agents, delete", async () => {
    const ownerTok = (await createApiToken(owner.ctx, createTokenInput.parse({ name: uniq("ot-"), role: "owner" }))).token;
    const tenant = await makeTenant(t.db, owner.actor);
    const server = await makeServer(owner.ctx, tenant.id);

    const created = await fleetsRoute.POST(req("POST", "/api/v1/admin/fleets", { key: ownerTok, body: { name: uniq("Http "), serverIds: [server.id] } }), noParams);
    expect(created.status).toBe(201);
    const fleet = (await created.json()) as { id: string; name: string; serverIds: string[] };
    expect(fleet.serverIds).toEqual([server.id]);
    const dup = await fleetsRoute.POST(req("POST", "/api/v1/admin/fleets", { key: ownerTok, body: { name: fleet.name } }), noParams);
    expect(dup.status).toBe(409);
    const badIds = await fleetsRoute.POST(req("POST", "/api/v1/admin/fleets", { key: ownerTok, body: { name: uniq("Http "), serverIds: ["srv_x"] } }), noParams);
    expect(badIds.status).toBe(422);
    expect(((await badIds.json()) as { error: { issues: { path: string }[] } }).error.issues[0]!.path).toBe("serverIds.0");

    const list = (await (await fleetsRoute.GET(req("GET", "/api/v1/admin/fleets", { key: ownerTok }), noParams)).json()) as { items: { id: string }[] };
    expect(list.items.map((f) => f.id)).toContain(fleet.id);
    const patched = await fleetRoute.PATCH(req("PATCH", `/api/v1/admin/fleets/${fleet.id}`, { key: ownerTok, body: { description: "edge" } }), params({ fleetId: fleet.id }));
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as { description: string }).description).toBe("edge");

    const minted = await tokensRoute.POST(req("POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, { key: ownerTok }), params({ fleetId: fleet.id }));
    expect(minted.status).toBe(201);
    const tok = (await minted.json()) as { id: string; token: string; expiresAt: string };
    expect(tok.token).toMatch(/^mde_/);
    const tooLong = await tokensRoute.POST(req("POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, { key: ownerTok, body: { ttlMinutes: 7 * 24 * 60 + 1 } }), params({ fleetId: fleet.id }));
    expect(tooLong.status).toBe(422);
    const spare = (await (
      await tokensRoute.POST(req("POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, { key: ownerTok, body: { ttlMinutes: 5 } }), params({ fleetId: fleet.id }))
    ).json()) as { id: string };
    const revoked = await tokenRoute.DELETE(req("DELETE", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens/${spare.id}`, { key: ownerTok }), params({ fleetId: fleet.id, tokenId: spare.id }));
    expect(revoked.status).toBe(204);
    const listed = (await (await tokensRoute.GET(req("GET", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, { key: ownerTok }), params({ fleetId: fleet.id }))).json()) as {
      items: { id: string }[];
    };
    expect(listed.items.map((x) => x.id)).toEqual([tok.id]);

    const enrolled = (await (await enrollRoute.POST(req("POST", "/api/v1/agent/enroll", { body: { token: tok.token, name: "http-agent", version: "1" } }))).json()) as {
      agentId: string;
      agentKey: string;
    };
    const rotated = await rotateRoute.POST(req("POST", `/api/v1/admin/agents/${enrolled.agentId}/rotate-key`, { key: ownerTok }), params({ agentId: enrolled.agentId }));
    expect(rotated.status).toBe(200);
    const { agentKey } = (await rotated.json()) as { agentKey: string };
    expect((await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: enrolled.agentKey }))).status).toBe(401);
    expect((await bundleRoute.GET(req("GET", "/api/v1/agent/bundle", { key: agentKey }))).status).toBe(404);

    const got = (await (await fleetRoute.GET(req("GET", `/api/v1/admin/fleets/${fleet.id}`, { key: ownerTok }), params({ fleetId: fleet.id }))).json()) as { agents: { id: string; name: string }[] };
    expect(got.agents.map((a) => a.name)).toEqual(["http-agent"]);
    const gone = await fleetRoute.DELETE(req("DELETE", `/api/v1/admin/fleets/${fleet.id}`, { key: ownerTok }), params({ fleetId: fleet.id }));
    expect(gone.status).toBe(204);
    expect((await fleetRoute.GET(req("GET", `/api/v1/admin/fleets/${fleet.id}`, { key: ownerTok }), params({ fleetId: fleet.id }))).status).toBe(404);
  });

  it("a tenant admin's token reads its fleets but cannot write them", async () => {
    const tenant = await makeTenant(t.db, owner.actor);
    const admin = await makeUser(t.db, { memberships: [[tenant.id, "admin"]] });
    const adminTok = (await createApiToken(admin.ctx, createTokenInput.parse({ name: uniq("at-"), role: "admin", tenantId: tenant.id }))).token;
    const server = await makeServer(owner.ctx, tenant.id);
    const fleet = (await createFleet(owner.ctx, { name: uniq("Ro "), serverIds: [server.id] }))!;
    expect((await fleetRoute.GET(req("GET", `/api/v1/admin/fleets/${fleet.id}`, { key: adminTok }), params({ fleetId: fleet.id }))).status).toBe(200);
    expect((await fleetRoute.PATCH(req("PATCH", `/api/v1/admin/fleets/${fleet.id}`, { key: adminTok, body: { description: "x" } }), params({ fleetId: fleet.id }))).status).toBe(403);
    expect((await fleetsRoute.POST(req("POST", "/api/v1/admin/fleets", { key: adminTok, body: { name: uniq("No ") } }), noParams)).status).toBe(403);
    expect((await tokensRoute.POST(req("POST", `/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`, { key: adminTok }), params({ fleetId: fleet.id }))).status).toBe(403);
  });
});
