import "server-only";
import { and, asc, eq } from "drizzle-orm";
import { z } from "zod";
import { maskingRules, tools, type MaskingRule } from "@/db/schema";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { maskPathError, MASK_PATH_MAX } from "@/lib/enforcement/masking";
import { AppError, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";

const pathSchema = z
  .string()
  .trim()
  .max(MASK_PATH_MAX, `a path is at most ${MASK_PATH_MAX} characters`)
  .superRefine((p, c) => {
    const e = maskPathError(p);
    if (e) c.addIssue({ code: "custom", message: e });
  });

export const maskingRuleInput = z.object({
  tool: z.string().trim().min(1).max(128).describe('A tool name from the server\'s catalogue, or "*" for every tool'),
  paths: z
    .array(pathSchema)
    .min(1, "give at least one path")
    .max(50, "at most 50 paths per rule")
    .describe('Argument paths: dot-separated keys, "*" for every key or array item (e.g. "card.number", "items.*.ssn")'),
  mode: z.enum(["hide", "hash"]).describe('"hide" replaces the value with "[masked]"; "hash" with a keyed SHA-256 prefix (low-entropy values can be guessed: hide them)'),
});
export type MaskingRuleInput = z.infer<typeof maskingRuleInput>;

function view(r: MaskingRule) {
  return { id: r.id, serverId: r.serverId, tool: r.tool, paths: r.paths, mode: r.mode, createdBy: r.createdBy, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString() };
}

/** What the trail keeps of a rule (paths are names, never values). */
const trailView = (r: Pick<MaskingRule, "tool" | "paths" | "mode">) => ({ tool: r.tool, paths: r.paths, mode: r.mode });

async function checkTool(ctx: Ctx, serverId: string, tool: string) {
  if (tool === "*") return;
  const [row] = await ctx.db
    .select({ id: tools.id })
    .from(tools)
    .where(and(eq(tools.serverId, serverId), eq(tools.kind, "tool"), eq(tools.name, tool)));
  if (!row)
    throw new AppError("validation_failed", `Tool "${tool}" is not in this server's catalogue`, [
      { path: "tool", message: `tool "${tool}" is not in the catalogue; pick one of its tools or "*" for all` },
    ]);
}

/** The server's masking rules, with the tool names a rule may name. */
export async function listMaskingRules(ctx: Ctx, serverId: string) {
  const { server } = await loadServer(ctx, serverId, "servers.read");
  const [rows, toolRows] = await Promise.all([
    ctx.db.select().from(maskingRules).where(eq(maskingRules.serverId, server.id)).orderBy(asc(maskingRules.createdAt), asc(maskingRules.id)),
    ctx.db
      .select({ name: tools.name })
      .from(tools)
      .where(and(eq(tools.serverId, server.id), eq(tools.kind, "tool")))
      .orderBy(asc(tools.name)),
  ]);
  return { serverId: server.id, items: rows.map(view), tools: toolRows.map((t) => t.name) };
}

/** Adds a rule and republishes the live bundles serving the server (agents apply it within ms). */
export async function createMaskingRule(ctx: Ctx, serverId: string, input: MaskingRuleInput, kek: Kek) {
  const { server } = await loadServer(ctx, serverId, "masking.write");
  await checkTool(ctx, server.id, input.tool);
  const paths = [...new Set(input.paths)];
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(maskingRules)
      .values({ id: newId("mask"), serverId: server.id, tool: input.tool, paths, mode: input.mode, createdBy: ctx.actor.label })
      .returning();
    await recordEvent(tx, ctx.actor, { action: "masking.create", targetType: "masking_rule", targetId: row!.id, tenantId: server.tenantId, after: { serverId: server.id, ...trailView(row!) } });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `masking rule added on ${server.name}`);
    return view(row!);
  });
}

async function loadRule(ctx: Ctx, serverId: string, ruleId: string) {
  const { server } = await loadServer(ctx, serverId, "masking.write");
  const [rule] = await ctx.db
    .select()
    .from(maskingRules)
    .where(and(eq(maskingRules.id, ruleId), eq(maskingRules.serverId, server.id)));
  if (!rule) throw notFound("Masking rule");
  return { server, rule };
}

/** Replaces a rule's tool, paths and mode. */
export async function updateMaskingRule(ctx: Ctx, serverId: string, ruleId: string, input: MaskingRuleInput, kek: Kek) {
  const { server, rule } = await loadRule(ctx, serverId, ruleId);
  await checkTool(ctx, server.id, input.tool);
  const paths = [...new Set(input.paths)];
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx.update(maskingRules).set({ tool: input.tool, paths, mode: input.mode, updatedAt: new Date() }).where(eq(maskingRules.id, rule.id)).returning();
    if (!row) throw notFound("Masking rule");
    await recordEvent(tx, ctx.actor, { action: "masking.update", targetType: "masking_rule", targetId: rule.id, tenantId: server.tenantId, before: trailView(rule), after: trailView(row) });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `masking rule changed on ${server.name}`);
    return view(row);
  });
}

export async function deleteMaskingRule(ctx: Ctx, serverId: string, ruleId: string, kek: Kek): Promise<void> {
  const { server, rule } = await loadRule(ctx, serverId, ruleId);
  return ctx.db.transaction(async (tx) => {
    const gone = await tx.delete(maskingRules).where(eq(maskingRules.id, rule.id)).returning({ id: maskingRules.id });
    if (!gone.length) throw notFound("Masking rule");
    await recordEvent(tx, ctx.actor, { action: "masking.delete", targetType: "masking_rule", targetId: rule.id, tenantId: server.tenantId, before: { serverId: server.id, ...trailView(rule) } });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `masking rule removed on ${server.name}`);
  });
}
