/**
 * A tool's version history is paged (follow-up of issues 10 and 17): an
 * upstream that keeps changing a tool adds a version each time, and the tool
 * answer used to carry the full definition of every one of them, so any
 * reader's request cost memory without limit. Now: the latest 20 versions as
 * summaries, the full definitions of the two diffed versions only, older
 * pages and single versions on request. Real PostgreSQL, real services, the
 * real route handlers.
 */
import { randomBytes } from "node:crypto";
import { NextRequest } from "next/server";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tools, toolVersions } from "@/db/schema";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import { addTool, getTool, getToolVersion, listToolVersions, toolVersionListQuery } from "@/lib/catalog/service";
import { newId } from "@/lib/ids";
import { createServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import * as toolRoute from "@/app/api/v1/admin/tools/[toolId]/route";
import * as versionsRoute from "@/app/api/v1/admin/tools/[toolId]/versions/route";
import * as versionRoute from "@/app/api/v1/admin/tools/[toolId]/versions/[versionId]/route";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

process.env.NEXTAUTH_SECRET ??= randomBytes(32).toString("base64url");
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

const VERSIONS = 500;
// Each version's definition is ~16 KB: 500 of them were ~8 MB in one answer.
const BIG = "x".repeat(16 * 1024);

describe("tool version history", () => {
  let t: TestDb;
  let admin: MadeUser;
  let outsider: MadeUser;
  let toolId: string;
  let otherToolId: string;
  let versionIds: string[];
  let auditorToken: string;

  beforeAll(async () => {
    t = await createTestDb();
    g.__mandateDb = Promise.resolve(t.handle);
    const owner = await makeUser(t.db, { role: "owner" });
    const tenantId = (await makeTenant(t.db, owner.actor)).id;
    const otherTenant = (await makeTenant(t.db, owner.actor)).id;
    admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    outsider = await makeUser(t.db, { memberships: [[otherTenant, "admin"]] });
    const auditor = await makeUser(t.db, { memberships: [[tenantId, "auditor"]] });
    auditorToken = (await createApiToken(auditor.ctx, createTokenInput.parse({ name: uniq("r-"), role: "auditor", tenantId }))).token;
    const server = (await createServer(
      admin.ctx,
      createServerInput.parse({ tenantId, name: uniq("History "), resourceUri: `https://${uniq("hist-")}.example.com/mcp`, upstreamUrl: "https://up.example/mcp", scopes: [] }),
    ))!;
    const tool = await addTool(admin.ctx, server.id, { name: "churn", description: "v1", inputSchema: { type: "object" }, annotations: {}, risk: "low" });
    toolId = tool.id;
    otherToolId = (await addTool(admin.ctx, server.id, { name: "other", description: "other", inputSchema: { type: "object" }, annotations: {}, risk: "low" })).id;
    // An upstream that changed the tool 500 more times (the import path would add exactly these rows).
    const rows = Array.from({ length: VERSIONS }, (_, i) => ({
      id: newId("toolVersion"),
      toolId,
      version: i + 2,
      title: null,
      description: `v${i + 2} ${BIG}`,
      inputSchema: { type: "object", properties: { [`arg${i}`]: { type: "string" } } },
      outputSchema: null,
      annotations: {},
      hash: `sha256:${(i + 2).toString(16).padStart(64, "0")}`,
      source: "import" as const,
      createdBy: "import",
    }));
    for (let i = 0; i < rows.length; i += 100) await t.db.insert(toolVersions).values(rows.slice(i, i + 100));
    await t.db
      .update(tools)
      .set({ latestVersionId: rows.at(-1)!.id })
      .where(eq(tools.id, toolId));
    versionIds = [tool.history[0]!.id, ...rows.map((r) => r.id)];
  });
  afterAll(async () => {
    delete g.__mandateDb;
    await t.close();
  });

  it("500 versions: the tool answer stays bounded (latest 20 as summaries; full definitions of the two diffed versions only)", async () => {
    const tool = await getTool(admin.ctx, toolId);
    const bytes = JSON.stringify(tool).length;
    // Two definitions of ~16 KB and their diff, plus 20 summaries: well under 100 KB (it was ~8 MB).
    expect(bytes).toBeLessThan(100 * 1024);
    expect(tool.historyTotal).toBe(VERSIONS + 1);
    expect(tool.history).toHaveLength(20);
    expect(tool.history.map((v) => v.version)).toEqual(Array.from({ length: 20 }, (_, i) => VERSIONS + 1 - i));
    expect(Object.keys(tool.history[0]!).sort()).toEqual(["approvedAt", "approvedBy", "createdAt", "hash", "id", "size", "source", "version"]);
    expect(tool.history[0]!.size).toBeGreaterThan(16 * 1024);
    expect(tool.history[0]!.size).toBeLessThan(17 * 1024);
    // The two diffed versions come whole.
    expect(tool.approvedVersion!.version).toBe(1);
    expect(tool.latestVersion.version).toBe(VERSIONS + 1);
    expect(tool.latestVersion.description).toContain(BIG);
    expect(tool.diff!.length).toBeGreaterThan(0);
  });

  it("older versions page as summaries (at most 50 a page), newest first", async () => {
    const p2 = await listToolVersions(admin.ctx, toolId, toolVersionListQuery.parse({ page: 2 }));
    expect(p2).toMatchObject({ total: VERSIONS + 1, page: 2, pageSize: 20 });
    expect(p2.items.map((v) => v.version)).toEqual(Array.from({ length: 20 }, (_, i) => VERSIONS + 1 - 20 - i));
    const last = await listToolVersions(admin.ctx, toolId, toolVersionListQuery.parse({ page: 11, pageSize: 50 }));
    expect(last.items.map((v) => v.version)).toEqual([1]);
    expect(toolVersionListQuery.safeParse({ pageSize: 51 }).success).toBe(false);
    expect(JSON.stringify(await listToolVersions(admin.ctx, toolId, toolVersionListQuery.parse({ pageSize: 50 }))).length).toBeLessThan(20 * 1024);
  });

  it("one version by id comes whole; a version of another tool, or of a tool the caller cannot see, is not found", async () => {
    const v = await getToolVersion(admin.ctx, toolId, versionIds[100]!);
    expect(v).toMatchObject({ id: versionIds[100], version: 101, description: `v101 ${BIG}` });
    await expectAppError(getToolVersion(admin.ctx, otherToolId, versionIds[100]!), "not_found");
    await expectAppError(getToolVersion(outsider.ctx, toolId, versionIds[100]!), "not_found");
    await expectAppError(listToolVersions(outsider.ctx, toolId, toolVersionListQuery.parse({})), "not_found");
  });

  it("the routes answer the same, bounded, to any reader (an auditor's API token)", async () => {
    const token = auditorToken;
    const req = (path: string) => new NextRequest(`http://localhost${path}`, { headers: { authorization: `Bearer ${token}` } });
    const params = (p: Record<string, string>) => ({ params: Promise.resolve(p) });
    const one = await toolRoute.GET(req(`/api/v1/admin/tools/${toolId}`), params({ toolId }));
    expect(one.status).toBe(200);
    expect((await one.text()).length).toBeLessThan(100 * 1024);
    const page = await versionsRoute.GET(req(`/api/v1/admin/tools/${toolId}/versions?page=3&pageSize=10`), params({ toolId }));
    expect(page.status).toBe(200);
    expect(((await page.json()) as { items: { version: number }[] }).items.map((v) => v.version)).toEqual(Array.from({ length: 10 }, (_, i) => VERSIONS + 1 - 20 - i));
    const ver = await versionRoute.GET(req(`/api/v1/admin/tools/${toolId}/versions/${versionIds[0]}`), params({ toolId, versionId: versionIds[0]! }));
    expect(ver.status).toBe(200);
    expect(((await ver.json()) as { version: number }).version).toBe(1);
  });
});
