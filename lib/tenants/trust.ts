import "server-only";
import { and, asc, eq, inArray, or } from "drizzle-orm";
import { z } from "zod";
import { serverTenants, servers, tenantIssuers, type TenantIssuer, type TrustedIssuer } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import type { Db } from "@/db/client";
import type { Actor } from "@/lib/auth/permissions";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { isUniqueViolation } from "@/lib/db-errors";
import { AppError, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { allowedAlgorithms, issuerUrlSchema } from "@/lib/servers/schemas";
import { recordEvent } from "@/lib/trail/record";
import { loadTenant } from "./service";

/**
 * Trust is granted by a tenant (issue 10): the issuers a tenant trusts, each
 * with the key source this tenant chose and the rule that maps a token to this
 * tenant. Only this tenant's admins change it; no server edit touches it.
 */

export const MAX_TENANT_ISSUERS = 20;

// A literal claim name (Auth0 style `https://example.com/tenant`) or a dot-separated path (`realm_access.roles`).
const claimPath = z
  .string()
  .trim()
  .min(1)
  .max(256)
  .regex(/^[^\s]+$/, "must be a claim name or a dot-separated path without spaces");

export const tenantMappingSchema = z
  .discriminatedUnion("mode", [
    z.object({
      mode: z.literal("claim"),
      claim: claimPath.describe("Claim (or nested path) whose value, or one of whose array values, names this tenant"),
      values: z
        .array(z.string().trim().min(1).max(256))
        .min(1, "give at least one value")
        .max(50, "at most 50 values")
        .refine((a) => new Set(a).size === a.length, "values must not repeat")
        .describe("Claim values that mean this tenant (e.g. an Entra tid GUID, an Okta org id)"),
    }),
    z.object({ mode: z.literal("issuer").describe("Every token of this issuer is this tenant") }),
  ])
  .describe("How a token of this issuer maps to this tenant");

export const tenantIssuerInput = z
  .object({
    issuer: issuerUrlSchema.describe("Issuer identifier (iss), compared exactly"),
    jwksUri: issuerUrlSchema.optional().describe("JWKS URI (https, or http on loopback); omit to use discovery"),
    discovery: z.boolean().default(true).describe("Find the JWKS through the issuer's metadata (RFC 8414, then OpenID Connect)"),
    algorithms: z.array(z.enum(allowedAlgorithms)).min(1, "choose at least one algorithm").max(10).default(["RS256", "ES256"]).describe("Asymmetric algorithms accepted"),
    claims: z
      .object({
        user: claimPath.default("sub"),
        client: claimPath.default("client_id"),
        scopes: claimPath.default("scope"),
        groups: claimPath.default("groups"),
      })
      .prefault({})
      .describe("Claim paths for the user, the OAuth client, the scopes and the groups"),
    tenantMapping: tenantMappingSchema,
    requireTyp: z.enum(["at+jwt"]).nullable().default(null).describe('RFC 9068: refuse tokens whose JOSE typ is not "at+jwt"'),
    revocationEndpoint: issuerUrlSchema.optional().describe("RFC 7009 endpoint: agents report tokens they refuse as revoked (this tenant's tokens only)"),
  })
  .refine((i) => i.discovery || i.jwksUri, { message: "give a JWKS URI or enable discovery", path: ["jwksUri"] });

export type TenantIssuerInput = z.infer<typeof tenantIssuerInput>;

export function publicTenantIssuer(r: TenantIssuer) {
  return {
    id: r.id,
    tenantId: r.tenantId,
    issuer: r.issuer,
    jwksUri: r.jwksUri,
    discovery: r.discovery,
    algorithms: r.algorithms,
    claims: r.claims,
    tenantMapping: r.tenantMapping,
    requireTyp: r.requireTyp,
    revocationEndpoint: r.revocationEndpoint,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
export type PublicTenantIssuer = ReturnType<typeof publicTenantIssuer>;

function duplicate(err: unknown): never {
  if (isUniqueViolation(err)) throw new AppError("conflict", "The tenant already trusts this issuer", [{ path: "issuer", message: "already trusted" }]);
  throw err;
}

function row(input: TenantIssuerInput) {
  return {
    issuer: input.issuer,
    jwksUri: input.jwksUri ?? null,
    discovery: input.discovery,
    algorithms: input.algorithms,
    claims: input.claims,
    tenantMapping: input.tenantMapping,
    requireTyp: input.requireTyp,
    revocationEndpoint: input.revocationEndpoint ?? null,
  };
}

export async function listTenantIssuers(ctx: Ctx, tenantId: string): Promise<PublicTenantIssuer[]> {
  const t = await loadTenant(ctx, tenantId, "tenants.read");
  const rows = await ctx.db.select().from(tenantIssuers).where(eq(tenantIssuers.tenantId, t.id)).orderBy(asc(tenantIssuers.issuer));
  return rows.map(publicTenantIssuer);
}

export async function createTenantIssuer(ctx: Ctx, tenantId: string, input: TenantIssuerInput): Promise<PublicTenantIssuer> {
  const t = await loadTenant(ctx, tenantId, "tenants.write");
  try {
    return await ctx.db.transaction(async (tx) => {
      const existing = await tx.select({ id: tenantIssuers.id }).from(tenantIssuers).where(eq(tenantIssuers.tenantId, t.id));
      if (existing.length >= MAX_TENANT_ISSUERS) throw new AppError("conflict", `A tenant trusts at most ${MAX_TENANT_ISSUERS} issuers`);
      const [r] = await tx
        .insert(tenantIssuers)
        .values({ id: newId("tenantIssuer"), tenantId: t.id, ...row(input) })
        .returning();
      const out = publicTenantIssuer(r!);
      await recordEvent(tx, ctx.actor, { action: "tenant.issuer.create", targetType: "tenant_issuer", targetId: r!.id, tenantId: t.id, after: out });
      return out;
    });
  } catch (err) {
    duplicate(err);
  }
}

async function loadEntry(ctx: Ctx, tenantId: string, issuerId: string, perm: "tenants.read" | "tenants.write"): Promise<TenantIssuer> {
  const t = await loadTenant(ctx, tenantId, perm);
  // The tenant comes from the loaded row: an entry of another tenant is not found.
  const [r] = await ctx.db
    .select()
    .from(tenantIssuers)
    .where(and(eq(tenantIssuers.id, issuerId), eq(tenantIssuers.tenantId, t.id)));
  if (!r) throw notFound("Trusted issuer");
  return r;
}

export async function getTenantIssuer(ctx: Ctx, tenantId: string, issuerId: string): Promise<PublicTenantIssuer> {
  return publicTenantIssuer(await loadEntry(ctx, tenantId, issuerId, "tenants.read"));
}

/** The servers a tenant may use (owned or shared with it): the fleets serving them carry its trust. */
async function serversOfTenant(db: Db, tenantId: string): Promise<string[]> {
  const rows = await db
    .select({ id: servers.id })
    .from(servers)
    .where(or(eq(servers.tenantId, tenantId), inArray(servers.id, db.select({ id: serverTenants.serverId }).from(serverTenants).where(eq(serverTenants.tenantId, tenantId)))));
  return rows.map((r) => r.id);
}

/**
 * Trust only narrows without a publish: after an entry is changed or removed,
 * every live bundle carrying it is republished at once without it (the
 * changed configuration arrives with the next publish, which runs the tests).
 */
async function withdrawLive(db: Db, actor: Actor, kek: Kek, entry: TenantIssuer, why: string) {
  await republishLiveBundles(db, actor, kek, await serversOfTenant(db, entry.tenantId), `tenant ${entry.tenantId} ${why} ${entry.issuer}`);
}

export async function updateTenantIssuer(ctx: Ctx, tenantId: string, issuerId: string, input: TenantIssuerInput, kek: Kek): Promise<PublicTenantIssuer> {
  const before = await loadEntry(ctx, tenantId, issuerId, "tenants.write");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [r] = await tx
        .update(tenantIssuers)
        .set({ ...row(input), updatedAt: new Date() })
        .where(and(eq(tenantIssuers.id, before.id), eq(tenantIssuers.tenantId, before.tenantId)))
        .returning();
      const out = publicTenantIssuer(r!);
      await recordEvent(tx, ctx.actor, { action: "tenant.issuer.update", targetType: "tenant_issuer", targetId: before.id, tenantId: before.tenantId, before: publicTenantIssuer(before), after: out });
      await withdrawLive(tx, ctx.actor, kek, before, "changed its trust in");
      return out;
    });
  } catch (err) {
    duplicate(err);
  }
}

export async function deleteTenantIssuer(ctx: Ctx, tenantId: string, issuerId: string, kek: Kek): Promise<void> {
  const before = await loadEntry(ctx, tenantId, issuerId, "tenants.write");
  await ctx.db.transaction(async (tx) => {
    await tx.delete(tenantIssuers).where(and(eq(tenantIssuers.id, before.id), eq(tenantIssuers.tenantId, before.tenantId)));
    await recordEvent(tx, ctx.actor, { action: "tenant.issuer.delete", targetType: "tenant_issuer", targetId: before.id, tenantId: before.tenantId, before: publicTenantIssuer(before) });
    await withdrawLive(tx, ctx.actor, kek, before, "stopped trusting");
  });
}

/**
 * Adds a server's advertised issuers to one tenant's trust, inside the
 * caller's transaction, for an actor that administers that tenant (the
 * caller checks it): issuers the tenant already trusts are left exactly as
 * the tenant configured them. The mapping reproduces the server form's old
 * rule for this tenant only: the tenant claim must name this tenant's id.
 */
export async function trustServerIssuers(db: Db, actor: Actor, tenantId: string, issuers: TrustedIssuer[]): Promise<string[]> {
  if (issuers.length === 0) return [];
  const have = new Set((await db.select({ issuer: tenantIssuers.issuer }).from(tenantIssuers).where(eq(tenantIssuers.tenantId, tenantId))).map((r) => r.issuer));
  const added: string[] = [];
  for (const i of issuers) {
    if (have.has(i.issuer) || have.size + added.length >= MAX_TENANT_ISSUERS) continue;
    const [r] = await db
      .insert(tenantIssuers)
      .values({
        id: newId("tenantIssuer"),
        tenantId,
        issuer: i.issuer,
        jwksUri: i.jwksUri ?? null,
        discovery: i.discovery,
        algorithms: i.algorithms,
        claims: { user: i.claims.user, client: i.claims.client, scopes: i.claims.scopes, groups: "groups" },
        tenantMapping: { mode: "claim", claim: i.claims.tenant, values: [tenantId] },
        revocationEndpoint: i.revocationEndpoint ?? null,
      })
      .onConflictDoNothing()
      .returning();
    if (!r) continue;
    added.push(i.issuer);
    await recordEvent(db, actor, { action: "tenant.issuer.create", targetType: "tenant_issuer", targetId: r.id, tenantId, after: publicTenantIssuer(r) });
  }
  return added;
}
