import canonicalize from "canonicalize";
import { inArray } from "drizzle-orm";
import type { Db } from "@/db/client";
import { tenantIssuers, type TenantIssuer } from "@/db/schema";
import type { BundleTrust } from "@/lib/enforcement/bundle";

/** The trust entries of these tenants, as the bundle carries them (each tenant's own, nothing shared). */
export function trustOf(rows: TenantIssuer[], tenantIds: string[]): BundleTrust[] {
  const wanted = new Set(tenantIds);
  return rows
    .filter((r) => wanted.has(r.tenantId))
    .sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.issuer.localeCompare(b.issuer))
    .map((r) => ({
      tenantId: r.tenantId,
      issuer: r.issuer,
      ...(r.jwksUri ? { jwksUri: r.jwksUri } : {}),
      discovery: r.discovery,
      algorithms: r.algorithms,
      claims: r.claims,
      tenantMapping: r.tenantMapping,
      ...(r.requireTyp ? { requireTyp: r.requireTyp } : {}),
      ...(r.revocationEndpoint ? { revocationEndpoint: r.revocationEndpoint } : {}),
    }));
}

/**
 * The entries of `trust` that still stand exactly as their tenant configures
 * them now. A live republish keeps only these: a removed or changed entry
 * stops admitting tokens at once, and a changed entry's new configuration
 * arrives with the next publish (a live republish only ever narrows trust).
 */
export async function stillTrusted(db: Db, trust: BundleTrust[]): Promise<BundleTrust[]> {
  const tenantIds = [...new Set(trust.map((e) => e.tenantId))];
  if (tenantIds.length === 0) return [];
  const rows = await db.select().from(tenantIssuers).where(inArray(tenantIssuers.tenantId, tenantIds));
  const now = new Set(trustOf(rows, tenantIds).map((e) => canonicalize(e)));
  return trust.filter((e) => now.has(canonicalize(e)));
}
