/**
 * Resources, resource templates and prompts in the catalogue: imported from a
 * real upstream (sandbox/upstream-v2.ts, the official SDK v2 serving the
 * conformance suite's resources and prompts) through the same authenticated
 * import path as tools, stored with a definition hash, approved and blocked
 * like tools, drift detected; then compiled into a bundle that decide()
 * enforces: an approved prompt is allowed, an unapproved resource denied.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { tools, toolVersions } from "@/db/schema";
import { approveTool, blockTool, getTool, importCatalog, listTools, promptDefinitionSchema, resourceDefinitionSchema, toolListQuery } from "@/lib/catalog/service";
import { compileBundle } from "@/lib/bundles/compile";
import { latestToolHashes } from "@/lib/bundles/decision-live";
import { loadSnapshot } from "@/lib/bundles/snapshot";
import { entryHash } from "@/lib/enforcement/catalogue-entry";
import { decide, decisionView, driftedAgainst, filterList } from "@/lib/enforcement/decide";
import { fetchUpstreamCatalogue } from "@/lib/enforcement/upstream-tools";
import { createPolicy, policyInput, simulate, simulateInput } from "@/lib/policy/service";
import { createServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { startUpstreamV2, type UpstreamV2 } from "@/sandbox/upstream-v2";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { principal } from "./decide-fixtures";

let t: TestDb;
let upstream: UpstreamV2;
let admin: MadeUser;
let tenantId: string;

beforeAll(async () => {
  [t, upstream] = await Promise.all([createTestDb(), startUpstreamV2()]);
  const owner = await makeUser(t.db, { role: "owner" });
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
});
afterAll(async () => {
  await Promise.all([t?.close(), upstream?.stop()]);
});

const q = (kind: "tool" | "resource" | "resourceTemplate" | "prompt") => toolListQuery.parse({ pageSize: 100, kind });

describe("catalogue of resources, templates and prompts", () => {
  it("lists the upstream's whole catalogue over one connection", async () => {
    const c = await fetchUpstreamCatalogue(upstream.url);
    expect(c.resources.map((r) => r.uri)).toEqual(expect.arrayContaining(["test://static-text", "test://static-binary", "test://watched-resource"]));
    expect(c.resourceTemplates.map((r) => r.uriTemplate)).toContain("test://template/{id}/data");
    expect(c.prompts.map((p) => p.name)).toEqual(expect.arrayContaining(["test_simple_prompt", "test_prompt_with_arguments"]));
    expect(c.tools.length).toBeGreaterThan(5);
  });

  it("imports, approves, blocks, detects drift, compiles, and decide() enforces it", async () => {
    const id = uniq();
    const server = await createServer(admin.ctx, createServerInput.parse({ tenantId, name: `Res ${id}`, resourceUri: `https://res-${id}.example.com/mcp`, upstreamUrl: upstream.url, scopes: ["r"] }));
    const summary = await importCatalog(admin.ctx, server.id);
    expect(summary.entries.resource.added).toEqual(expect.arrayContaining(["test://static-text", "test://static-binary"]));
    expect(summary.entries.resourceTemplate.added).toEqual(["test://template/{id}/data"]);
    expect(summary.entries.prompt.added).toEqual(expect.arrayContaining(["test_simple_prompt", "test_prompt_with_arguments"]));
    expect(summary.added.length).toBeGreaterThan(5);

    // Listed per kind; tools stay the default list.
    const prompts = (await listTools(admin.ctx, server.id, q("prompt"))).items;
    const withArgs = prompts.find((p) => p.name === "test_prompt_with_arguments")!;
    expect(withArgs).toMatchObject({ kind: "prompt", status: "new" });
    expect(Object.keys((withArgs.latestVersion.inputSchema as { properties: object }).properties).sort()).toEqual(["arg1", "arg2"]);
    const resources = (await listTools(admin.ctx, server.id, q("resource"))).items;
    const text = resources.find((r) => r.name === "test://static-text")!;
    expect(text.latestVersion.definition).toMatchObject({ uri: "test://static-text", name: "static-text", mimeType: "text/plain" });
    expect(text.latestVersion.hash).toBe(entryHash("resource", text.latestVersion.definition));
    expect((await listTools(admin.ctx, server.id, toolListQuery.parse({ pageSize: 100 }))).items.every((x) => x.kind === "tool")).toBe(true);

    // Approve one prompt and one template; block a resource; leave the rest pending.
    await approveTool(admin.ctx, withArgs.id, { versionId: withArgs.latestVersion.id });
    const template = (await listTools(admin.ctx, server.id, q("resourceTemplate"))).items[0]!;
    await approveTool(admin.ctx, template.id, { versionId: template.latestVersion.id });
    const binary = resources.find((r) => r.name === "test://static-binary")!;
    await approveTool(admin.ctx, binary.id, { versionId: binary.latestVersion.id });
    await blockTool(admin.ctx, binary.id, { reason: "binary content is not reviewed" });
    expect((await getTool(admin.ctx, binary.id)).status).toBe("blocked");

    await createPolicy(
      admin.ctx,
      policyInput.parse({
        tenantId,
        serverId: server.id,
        name: `readers ${id}`,
        kind: "cedar",
        cedar: `permit (principal, action in [Action::"get_prompt", Action::"list_prompts", Action::"read_resource", Action::"list_resources", Action::"list_resource_templates"], resource);`,
      }),
    );
    await createPolicy(
      admin.ctx,
      policyInput.parse({
        tenantId,
        serverId: server.id,
        name: `no secret ${id}`,
        kind: "cedar",
        cedar: `forbid (principal, action == Action::"read_resource", resource) when { context.args has id && context.args.id == "secret" };`,
      }),
    );

    const snap = await loadSnapshot(t.db, [server.id]);
    const compiled = compileBundle(snap, { fleetId: "flt_test", revision: 1, parentRevision: null, createdAt: new Date().toISOString() });
    expect(compiled.issues).toEqual([]);
    const view = decisionView(compiled.content);
    const who = principal({ tenantId });
    const time = new Date();
    expect(decide(view, { method: "prompts/get", serverId: server.id, name: "test_prompt_with_arguments", principal: who, args: { arg1: "a", arg2: "b" }, time })).toMatchObject({ decision: "allow" });
    expect(decide(view, { method: "prompts/get", serverId: server.id, name: "test_simple_prompt", principal: who, args: {}, time })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(decide(view, { method: "resources/read", serverId: server.id, name: "test://static-text", principal: who, time })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(decide(view, { method: "resources/read", serverId: server.id, name: "test://static-binary", principal: who, time })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(decide(view, { method: "resources/read", serverId: server.id, name: "test://template/42/data", principal: who, time })).toMatchObject({ decision: "allow" });
    expect(decide(view, { method: "resources/read", serverId: server.id, name: "test://template/secret/data", principal: who, time })).toMatchObject({ decision: "deny", stage: "policy" });
    // Another tenant never reads through this server.
    expect(decide(view, { method: "prompts/get", serverId: server.id, name: "test_prompt_with_arguments", principal: principal({ tenantId: "ten_other" }), args: {}, time })).toMatchObject({
      decision: "deny",
      stage: "server",
    });

    // The simulator decides the new actions with the same decide(), on the server's draft.
    const sim = (action: string, tool: string, args: Record<string, unknown> = {}) =>
      simulate(admin.ctx, simulateInput.parse({ tenantId, serverId: server.id, request: { user: "alice", action, tool, args } }));
    expect(await sim("get_prompt", "test_prompt_with_arguments", { arg1: "a" })).toMatchObject({ decision: "allow", stage: "policy" });
    expect(await sim("read_resource", "test://static-text")).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(await sim("read_resource", "test://template/secret/data")).toMatchObject({ decision: "deny", stage: "policy" });
    expect(await sim("list_resource_templates", "test://template/{id}/data")).toMatchObject({ decision: "allow" });

    // The live listing filtered as the agent filters it: only the approved prompt.
    const live = await fetchUpstreamCatalogue(upstream.url);
    expect(filterList(view, { serverId: server.id, principal: who, time }, "prompts", live.prompts).kept.map((p) => p.name)).toEqual(["test_prompt_with_arguments"]);
    expect(filterList(view, { serverId: server.id, principal: who, time }, "resourceTemplates", live.resourceTemplates).kept).toHaveLength(1);

    // Drift: the prompt's latest version differs from the approved one → denied as drifted.
    const [row] = await t.db
      .select()
      .from(tools)
      .where(and(eq(tools.serverId, server.id), eq(tools.kind, "prompt"), eq(tools.name, "test_prompt_with_arguments")));
    await t.db.update(toolVersions).set({ hash: "sha256:changed" }).where(eq(toolVersions.id, row!.latestVersionId));
    const drifted = driftedAgainst(compiled.content, await latestToolHashes(t.db, [server.id]));
    expect([...drifted]).toEqual([`${server.id}/prompts:test_prompt_with_arguments`]);
    expect(decide(view, { method: "prompts/get", serverId: server.id, name: "test_prompt_with_arguments", principal: who, args: {}, time }, { drifted })).toMatchObject({
      decision: "deny",
      stage: "drift",
    });
    // Import sees the live definition unchanged against the (tampered) latest: a new version pending review.
    const again = await importCatalog(admin.ctx, server.id);
    expect(again.entries.prompt.changed).toEqual(["test_prompt_with_arguments"]);
    expect((await listTools(admin.ctx, server.id, q("prompt"))).items.find((p) => p.name === "test_prompt_with_arguments")!.status).toBe("changed");
  });

  it("bounds what an upstream lists: a URI in bytes (it is a btree key), control characters, argument count", () => {
    expect(resourceDefinitionSchema.safeParse({ uri: `test://${"é".repeat(1000)}`, name: "x" }).success).toBe(true);
    // 1,500 two-byte characters: within 2,048 characters, beyond 2,048 bytes.
    expect(resourceDefinitionSchema.safeParse({ uri: `test://${"é".repeat(1500)}`, name: "x" }).success).toBe(false);
    expect(resourceDefinitionSchema.safeParse({ uri: "test://a\nb", name: "x" }).success).toBe(false);
    expect(promptDefinitionSchema.safeParse({ name: "p", arguments: Array.from({ length: 51 }, (_, i) => ({ name: `a${i}` })) }).success).toBe(false);
  });
});
