/**
 * Impact replay (issue 11) replays resource reads, prompt gets and
 * completions with decide(), like tool calls: a draft that permits
 * get_prompt flips the recorded prompts/get denials, a resource read stays
 * denied when the resource is not approved, and a flip a policy on
 * (unrecorded) prompt arguments could cause is skipped, not guessed.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, fleetServers, fleets, toolVersions, tools, type NewDecision } from "@/db/schema";
import { analyzeImpact } from "@/lib/bundles/impact";
import { publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { entryHash, promptInputSchema } from "@/lib/enforcement/catalogue-entry";
import { ensurePartitions } from "@/lib/decisions/partitions";
import { newId } from "@/lib/ids";
import { createPolicy } from "@/lib/policy/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("impact replay of resources and prompts", () => {
  let t: TestDb;
  let owner: MadeUser;
  let fleetId: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    const tenantId = (await makeTenant(t.db, owner.actor)).id;
    const serverId = (await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.impact-res.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: [] }),
    ))!.id;
    // Approved catalogue rows: a prompt with an argument, a resource; another resource pending review.
    const entry = async (kind: "prompt" | "resource", name: string, def: Record<string, unknown>, approved: boolean) => {
      const toolId = newId("tool");
      const versionId = newId("toolVersion");
      await t.db.insert(tools).values({ id: toolId, serverId, kind, name, latestVersionId: versionId, ...(approved ? { approvedVersionId: versionId } : {}) });
      await t.db.insert(toolVersions).values({
        id: versionId,
        toolId,
        version: 1,
        description: "",
        inputSchema: kind === "prompt" ? promptInputSchema(def as never) : { type: "object" },
        definition: def,
        hash: entryHash(kind, def),
        source: "import",
        createdBy: "import",
      });
    };
    await entry("prompt", "summarize", { name: "summarize", arguments: [{ name: "tone" }] }, true);
    await entry("resource", "docs://handbook", { uri: "docs://handbook", name: "handbook" }, true);
    await entry("resource", "docs://draft", { uri: "docs://draft", name: "draft" }, false);
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: "impact resources fleet" });
    await t.db.insert(fleetServers).values({ fleetId, serverId });
    await publishBundle(owner.ctx, fleetId, { note: "baseline: nothing allowed" }, kek);
    await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name: "prompts and reads",
      description: "",
      kind: "cedar",
      cedar: `permit (principal, action in [Action::"get_prompt", Action::"read_resource"], resource);`,
      enabled: true,
    });
    await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name: "no angry summaries",
      description: "",
      kind: "cedar",
      cedar: `forbid (principal, action == Action::"get_prompt", resource) when { context.args has tone && context.args.tone == "angry" };`,
      enabled: true,
    });

    const at = new Date(Date.now() - 3600_000);
    const iat = Math.floor(at.getTime() / 1000);
    const row = (id: string, method: string, tool: string): NewDecision => ({
      id,
      at,
      agentId: "agt_test",
      fleetId,
      bundleRevision: 1,
      tenantId,
      serverId,
      method,
      tool,
      userId: "alice",
      clientId: "cli",
      scopes: [],
      outcome: "deny",
      determining: [],
      context: { groups: [], token: { iss: "https://as.example", iat, exp: iat + 7200 } },
    });
    await ensurePartitions(t.db, [at.getTime()]);
    await t.db
      .insert(decisions)
      .values([row("d-read", "resources/read", "docs://handbook"), row("d-draft", "resources/read", "docs://draft"), row("d-prompt", "prompts/get", "summarize"), row("d-list", "prompts/list", "")]);
  }, 60_000);
  afterAll(() => t?.close());

  it("flips the read the draft allows, keeps the unapproved one denied, and skips the prompt whose arguments a policy reads", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 100, examples: 10 });
    expect(r.totals.loaded).toBe(3);
    expect(r.totals.denyToAllow).toBe(1);
    expect(r.byTool.map((g) => g.label)).toEqual(["docs://handbook"]);
    expect(r.totals.unchanged).toBe(1);
    expect(r.totals.skipped).toBe(1);
  });
});
