import { and, asc, desc, eq } from "drizzle-orm";
import { z } from "zod";
import { scopeMappings, tools } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";
import { scopeSchema } from "@/lib/servers/schemas";
import { toolNameSchema, toolStatus } from "@/lib/catalog/service";

export const putScopeMappingInput = z.object({
  baseVersion: z.number().int().min(0).describe("The version the edit started from (0 when none); a newer one answers 409"),
  mapping: z.record(scopeSchema, z.array(toolNameSchema).max(2000)).describe("scope → tool names"),
});

/** The server's current scope × tool matrix, with the scopes and tools it may name. */
export async function getScopeMapping(ctx: Ctx, serverId: string) {
  const { server } = await loadServer(ctx, serverId, "servers.read");
  const [current] = await ctx.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, server.id)).orderBy(desc(scopeMappings.version)).limit(1);
  const toolRows = await ctx.db
    .select()
    .from(tools)
    .where(and(eq(tools.serverId, server.id), eq(tools.kind, "tool")))
    .orderBy(asc(tools.name));
  return {
    serverId: server.id,
    version: current?.version ?? 0,
    updatedAt: current?.createdAt.toISOString() ?? null,
    updatedBy: current?.createdBy ?? null,
    mapping: current?.mapping ?? {},
    scopes: server.scopes,
    tools: toolRows.map((t) => ({ name: t.name, status: toolStatus(t), removedUpstream: t.removedUpstream })),
  };
}

export async function listScopeMappingVersions(ctx: Ctx, serverId: string) {
  const { server } = await loadServer(ctx, serverId, "servers.read");
  const rows = await ctx.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, server.id)).orderBy(desc(scopeMappings.version)).limit(100);
  return rows.map((r) => ({ version: r.version, mapping: r.mapping, createdBy: r.createdBy, createdAt: r.createdAt.toISOString() }));
}

/** Saves a new version of the matrix. Every scope must be supported and every tool known. */
export async function putScopeMapping(ctx: Ctx, serverId: string, input: z.infer<typeof putScopeMappingInput>) {
  const { server } = await loadServer(ctx, serverId, "scopes.write");
  const known = new Set(
    (
      await ctx.db
        .select({ name: tools.name })
        .from(tools)
        .where(and(eq(tools.serverId, server.id), eq(tools.kind, "tool")))
    ).map((t) => t.name),
  );
  const issues: { path: string; message: string }[] = [];
  const mapping: Record<string, string[]> = {};
  for (const [scope, names] of Object.entries(input.mapping)) {
    if (!server.scopes.includes(scope)) issues.push({ path: `mapping.${scope}`, message: `scope "${scope}" is not supported by this server` });
    names.forEach((n, i) => {
      if (!known.has(n)) issues.push({ path: `mapping.${scope}.${i}`, message: `tool "${n}" is not in the catalogue` });
    });
    const unique = [...new Set(names)].sort();
    if (unique.length) mapping[scope] = unique;
  }
  if (issues.length) throw new AppError("validation_failed", "The mapping names unknown scopes or tools", issues);

  try {
    return await ctx.db.transaction(async (tx) => {
      const [current] = await tx.select().from(scopeMappings).where(eq(scopeMappings.serverId, server.id)).orderBy(desc(scopeMappings.version)).limit(1);
      const version = current?.version ?? 0;
      if (version !== input.baseVersion) throw new AppError("conflict", `Someone saved version ${version} meanwhile; reload and apply your change again`);
      const [row] = await tx
        .insert(scopeMappings)
        .values({ id: newId("scopeMapping"), serverId: server.id, version: version + 1, mapping, createdBy: ctx.actor.label })
        .returning();
      await recordEvent(tx, ctx.actor, { action: "scopes.update", targetType: "server", targetId: server.id, tenantId: server.tenantId, before: current?.mapping ?? {}, after: mapping });
      return { version: row!.version, mapping: row!.mapping };
    });
  } catch (err) {
    // Two saves racing on the same base version: the unique (server, version) key catches the loser.
    if (isUniqueViolation(err)) throw new AppError("conflict", "Someone saved meanwhile; reload and apply your change again");
    throw err;
  }
}
