import { randomBytes } from "node:crypto";
import { and, desc, eq, inArray, isNull, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import { apiTokens, tenants, tokenRoles, type ApiToken } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { hashSecret } from "./actors";
import { can, canGlobally, roleIn, seesAllTenants } from "./permissions";

export const createTokenInput = z
  .object({
    name: z.string().trim().min(2, "must be at least 2 characters").max(80),
    role: z.enum(tokenRoles).describe("owner (no tenant), admin or auditor"),
    tenantId: z.string().nullish().describe("The one tenant the token acts in; omit for owner or global auditor tokens"),
    expiresInDays: z.number().int().min(1).max(365).nullish().describe("Omit for no expiry"),
  })
  .refine((v) => v.role !== "owner" || !v.tenantId, { message: "owner tokens are not bound to a tenant", path: ["tenantId"] })
  .refine((v) => v.role !== "admin" || v.tenantId, { message: "admin tokens need a tenant", path: ["tenantId"] });

function publicToken(t: ApiToken) {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    tenantId: t.tenantId,
    hint: `mdt_…${t.lastFour}`,
    createdBy: t.createdBy,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt?.toISOString() ?? null,
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

/** Creates an API token no stronger than its creator. The secret is returned once. */
export async function createApiToken(ctx: Ctx, input: z.infer<typeof createTokenInput>) {
  if (ctx.actor.type !== "user") throw forbidden("API tokens cannot create API tokens");
  if (ctx.actor.mustChangePassword) throw forbidden("Choose your own password before creating API tokens");
  const tenantId = input.tenantId ?? null;
  if (tenantId) {
    const [t] = await ctx.db.select().from(tenants).where(eq(tenants.id, tenantId));
    if (!t || !can(ctx.actor, "tenants.read", t.id)) throw new AppError("validation_failed", "Unknown tenant", [{ path: "tenantId", message: "unknown tenant" }]);
    const held = roleIn(ctx.actor, t.id);
    if (!can(ctx.actor, "tokens.manage", t.id) && !(input.role === "auditor" && held)) throw forbidden("You cannot create tokens for this tenant");
    if (input.role === "admin" && held === "auditor") throw forbidden("An auditor cannot create an admin token");
  } else if (input.role === "owner" ? ctx.actor.globalRole !== "owner" : !canGlobally(ctx.actor, "tenants.read")) {
    throw forbidden("Only owners (or global auditors, for auditor tokens) create tokens without a tenant");
  }
  const id = newId("token");
  const secret = randomBytes(32).toString("base64url");
  const token = `mdt_${id.slice(4)}.${secret}`;
  const [row] = await ctx.db.transaction(async (tx) => {
    const rows = await tx
      .insert(apiTokens)
      .values({
        id,
        name: input.name,
        secretHash: hashSecret(secret),
        lastFour: secret.slice(-4),
        role: input.role,
        tenantId,
        createdBy: ctx.actor.userId,
        expiresAt: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86_400_000) : null,
      })
      .returning();
    await recordEvent(tx, ctx.actor, { action: "token.create", targetType: "token", targetId: id, tenantId, after: { name: input.name, role: input.role } });
    return rows;
  });
  return { ...publicToken(row!), token };
}

/** Tokens the actor may see: its own, and those of tenants it administers. */
export async function listApiTokens(ctx: Ctx) {
  const filters: SQL[] = [];
  if (!seesAllTenants(ctx.actor)) {
    const admin = [...ctx.actor.tenantRoles].filter(([t]) => can(ctx.actor, "tokens.manage", t)).map(([t]) => t);
    filters.push(admin.length ? or(eq(apiTokens.createdBy, ctx.actor.userId), inArray(apiTokens.tenantId, admin))! : eq(apiTokens.createdBy, ctx.actor.userId));
  }
  const rows = await ctx.db
    .select()
    .from(apiTokens)
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(desc(apiTokens.createdAt))
    .limit(500);
  return rows.map(publicToken);
}

export async function revokeApiToken(ctx: Ctx, tokenId: string) {
  const [t] = await ctx.db.select().from(apiTokens).where(eq(apiTokens.id, tokenId));
  const mayManage = (tok: ApiToken) => tok.createdBy === ctx.actor.userId || ctx.actor.globalRole === "owner" || (tok.tenantId !== null && can(ctx.actor, "tokens.manage", tok.tenantId));
  if (!t || !mayManage(t)) throw notFound("Token");
  if (t.revokedAt) throw new AppError("conflict", "The token is already revoked");
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(apiTokens)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiTokens.id, t.id), isNull(apiTokens.revokedAt)));
    await recordEvent(tx, ctx.actor, { action: "token.revoke", targetType: "token", targetId: t.id, tenantId: t.tenantId, before: { name: t.name, role: t.role } });
  });
}
