/**
 * GET /api/v1/metrics: Prometheus text for a scraper holding MANDATE_METRICS_TOKEN
 * or an owner's or auditor's API token; refused to anyone else. Admin API
 * requests are timed by route pattern (ids never become labels).
 */
import { randomBytes } from "node:crypto";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { routePattern } from "@/lib/metrics/registry";
import * as metricsRoute from "@/app/api/v1/metrics/route";
import * as tenantRoute from "@/app/api/v1/admin/tenants/[tenantId]/route";
import { createTestDb, makeTenant, makeUser, uniq, type TestDb } from "./db";

process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");
process.env.MANDATE_KEK ??= randomBytes(32).toString("base64");
const SCRAPER = randomBytes(24).toString("base64url");
process.env.MANDATE_METRICS_TOKEN = SCRAPER;
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

const get = (path: string, token?: string) => new NextRequest(`http://127.0.0.1${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

describe("control-plane metrics", () => {
  let t: TestDb;
  let ownerToken: string;
  let memberToken: string;
  let tenantId: string;

  beforeAll(async () => {
    t = await createTestDb();
    g.__mandateDb = Promise.resolve(t.handle);
    const owner = await makeUser(t.db, { role: "owner" });
    tenantId = (await makeTenant(t.db, owner.actor)).id;
    const admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    ownerToken = (await createApiToken(owner.ctx, createTokenInput.parse({ name: uniq("o-"), role: "owner" }))).token;
    memberToken = (await createApiToken(admin.ctx, createTokenInput.parse({ name: uniq("a-"), role: "admin", tenantId }))).token;
  });
  afterAll(async () => {
    delete g.__mandateDb;
    await t.close();
  });

  it("answers the scraper token and owners; refuses no credential, a wrong token and a tenant admin", async () => {
    expect((await metricsRoute.GET(get("/api/v1/metrics"))).status).toBe(401);
    expect((await metricsRoute.GET(get("/api/v1/metrics", "x".repeat(40)))).status).toBe(401);
    expect((await metricsRoute.GET(get("/api/v1/metrics", memberToken))).status).toBe(403);
    const owner = await metricsRoute.GET(get("/api/v1/metrics", ownerToken));
    expect(owner.status).toBe(200);
    const scraped = await metricsRoute.GET(get("/api/v1/metrics", SCRAPER));
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await scraped.text();
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "mandate_api_request_seconds"]) expect(text).toContain(`# TYPE ${name}`);
  });

  it("times admin API requests by route pattern, never by id", async () => {
    const res = await tenantRoute.GET(get(`/api/v1/admin/tenants/${tenantId}`, ownerToken), { params: Promise.resolve({ tenantId }) });
    expect(res.status).toBe(200);
    const text = await (await metricsRoute.GET(get("/api/v1/metrics", SCRAPER))).text();
    expect(text).toMatch(/mandate_api_request_seconds_count\{method="GET",route="\/api\/v1\/admin\/tenants\/\{tenantId\}",status="200"\} [1-9]/);
    expect(text).not.toContain(tenantId);
    expect(routePattern("/api/v1/admin/servers/srv_1/tools", { serverId: "srv_1" })).toBe("/api/v1/admin/servers/{serverId}/tools");
  });
});
