/**
 * Claim paths and tenant mapping of a tenant's trusted issuer: one pure
 * implementation for the token validator (agents) and the dashboard's
 * "paste a token, see how it maps" check (which decodes in the browser and
 * sends nothing). No imports, no I/O.
 */

/** How a token of a trusted issuer maps to the tenant that trusts it. */
export type TenantMappingRule = { mode: "claim"; claim: string; values: string[] } | { mode: "issuer" };

const MAX_CLAIM_PATH_DEPTH = 8;
/** Array claims are read up to this many items (a hostile token cannot make mapping costly). */
export const MAX_CLAIM_VALUES = 64;

/** Reads a claim by a literal name first (e.g. `https://example.com/tenant`), then as a dot-separated path of own properties. */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  const parts = path.split(".");
  if (parts.length < 2 || parts.length > MAX_CLAIM_PATH_DEPTH) return undefined;
  let cur: unknown = payload;
  for (const p of parts) {
    if (!cur || typeof cur !== "object" || Array.isArray(cur) || !Object.hasOwn(cur, p)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** A non-empty string, or a finite number as its decimal string. */
export function stringClaim(v: unknown): string | undefined {
  if (typeof v === "string" && v) return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Whether a token's claims map to the tenant under this rule: the claim's value, or one of its array values, is listed; or every token of the issuer. */
export function mapsToTenant(rule: TenantMappingRule, payload: Record<string, unknown>): boolean {
  if (rule.mode === "issuer") return true;
  if (rule.mode !== "claim" || !Array.isArray(rule.values) || rule.values.length === 0) return false;
  const v = claimAt(payload, rule.claim);
  const found = Array.isArray(v) ? v.slice(0, MAX_CLAIM_VALUES) : [v];
  return found.some((x) => {
    const s = stringClaim(x);
    return s !== undefined && rule.values.includes(s);
  });
}
