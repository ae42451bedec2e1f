import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { tools, toolVersions } from "@/db/schema";
import { DIFF_LIMITS, diffToolVersions, renderToolVersion } from "@/lib/catalog/diff";
import { addTool, getTool, toolDefinitionSchema } from "@/lib/catalog/service";
import { toolHash } from "@/lib/enforcement/tool-hash";
import { newId } from "@/lib/ids";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";

// Issue 17.2: a changed upstream definition rendered to tens of thousands of
// lines, and the n×m LCS table of the tool page exhausted the heap of the
// control plane for any reader who opened it.

/** An input schema of `items` numbers: two bytes each as JSON, one line each when pretty-printed. */
const numbers = (items: number, value: number) => ({ type: "object", properties: { mode: { type: "integer", enum: new Array<number>(items).fill(value) } } });
const version = (inputSchema: unknown) => ({ title: "t", description: "d", inputSchema, outputSchema: null, annotations: {} });

describe("tool version diff bounds", () => {
  it("diffs two completely different 30,000-line versions within a small time and output bound", () => {
    const before = renderToolVersion(version(numbers(30_000, 0)));
    const after = renderToolVersion(version(numbers(30_000, 1)));
    expect(before.split("\n").length).toBeGreaterThan(30_000);
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const d = diffToolVersions(before, after);
    const ms = performance.now() - t0;
    const grew = process.memoryUsage().heapUsed - heap0;
    expect(ms).toBeLessThan(1500);
    // The old table alone was 30,000² numbers (7 GB); the bounded diff stays in megabytes.
    expect(grew).toBeLessThan(64 * 1024 * 1024);
    expect(d.lines.length).toBeLessThanOrEqual(2 * DIFF_LIMITS.maxLines);
    expect(d.truncated).toMatchObject({ beforeLines: before.split("\n").length, afterLines: after.split("\n").length });
    expect(d.lines.some((l) => l.op === "del") && d.lines.some((l) => l.op === "add")).toBe(true);
  });

  it("a long version with a small change is diffed exactly over its first lines, and says it was cut", () => {
    const a = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
    const b = [...a];
    b[10] = "changed";
    const d = diffToolVersions(a.join("\n"), b.join("\n"));
    expect(d.lines.filter((l) => l.op === "del")).toEqual([{ op: "del", text: "line 10" }]);
    expect(d.lines.filter((l) => l.op === "add")).toEqual([{ op: "add", text: "changed" }]);
    expect(d.lines).toHaveLength(DIFF_LIMITS.maxLines + 1);
    expect(d.truncated).toEqual({ reason: "too_long", beforeLines: 5000, afterLines: 5000, comparedLines: DIFF_LIMITS.maxLines });
    // Within the caps nothing is cut.
    expect(diffToolVersions("a\nb", "a\nc").truncated).toBeNull();
  });

  it("cuts very long lines and renders hostile nesting compact (indentation cannot grow with depth)", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 2000; i++) deep = [deep];
    const text = renderToolVersion(version({ type: "object", properties: { x: deep } }));
    expect(text.length).toBeLessThan(10_000);
    const d = diffToolVersions(`${"x".repeat(100_000)}`, "y");
    expect(d.lines[0]!.text.length).toBeLessThanOrEqual(DIFF_LIMITS.maxLineChars + 1);
  });
});

describe("the tool page with a hostile upstream definition", () => {
  let t: TestDb;
  let auditor: MadeUser;
  let toolId: string;

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    const tenantId = (await makeTenant(t.db, owner.actor)).id;
    const admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    auditor = await makeUser(t.db, { memberships: [[tenantId, "auditor"]] });
    const server = await createServer(admin.ctx, createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.diff.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp" }));
    // Both definitions are within the catalogue's limits (64 KiB of input schema).
    const approved = toolDefinitionSchema.parse({ name: "big", description: "d", inputSchema: numbers(30_000, 0) });
    const changed = toolDefinitionSchema.parse({ name: "big", description: "d", inputSchema: numbers(30_000, 1) });
    const added = await addTool(admin.ctx, server!.id, { ...approved, risk: "low" });
    toolId = added.id;
    // What an import of the changed upstream listing records: a new latest version, pending review.
    const versionId = newId("toolVersion");
    await t.db.insert(toolVersions).values({
      id: versionId,
      toolId,
      version: 2,
      title: null,
      description: "d",
      inputSchema: changed.inputSchema,
      outputSchema: null,
      annotations: {},
      hash: toolHash(changed),
      source: "import",
      createdBy: "import",
    });
    await t.db.update(tools).set({ latestVersionId: versionId }).where(eq(tools.id, toolId));
  });
  afterAll(() => t.close());

  it("any reader opens it: the diff is answered, bounded and marked as cut, and the process keeps answering", async () => {
    const t0 = performance.now();
    const tool = await getTool(auditor.ctx, toolId);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(tool.status).toBe("changed");
    expect(tool.diff!.length).toBeGreaterThan(0);
    expect(tool.diff!.length).toBeLessThanOrEqual(2 * DIFF_LIMITS.maxLines);
    expect(tool.diffTruncated).toMatchObject({ reason: expect.stringMatching(/too_long|too_different/), beforeLines: expect.any(Number), afterLines: expect.any(Number) });
    expect(tool.diffTruncated!.afterLines).toBeGreaterThan(30_000);
    // The response stays small enough to send and render.
    expect(JSON.stringify(tool.diff).length).toBeLessThan(1024 * 1024);
    // And again, as another request of the same process.
    expect((await getTool(auditor.ctx, toolId)).id).toBe(toolId);
  });
});
