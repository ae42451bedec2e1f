/**
 * Origin binding of vault entries, pure (no database): what an entry's bundle
 * line says and whether it is suspended. See lib/vault/origin.ts for the model.
 */
import type { VaultEntry } from "@/db/schema";
import type { BundleCredential } from "@/lib/enforcement/bundle";

/** scheme://host[:port] of an upstream URL as URL.origin gives it; "" when it does not parse. */
export function upstreamOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "";
  }
}

/** Whether the entry must not be used for this upstream (it was stored for another origin, or for none recorded). */
export function isSuspended(entry: Pick<VaultEntry, "boundOrigin">, upstreamUrl: string): boolean {
  const origin = upstreamOrigin(upstreamUrl);
  return !entry.boundOrigin || !origin || entry.boundOrigin !== origin;
}

/** The bundle's credential line for an entry: its bound origin always (agents compare it with the upstream they call), and the suspension when there is one. */
export function bundleCredential(e: VaultEntry, upstreamUrl: string): BundleCredential {
  const line: BundleCredential = { entryId: e.id, serverId: e.serverId, tenantId: e.tenantId, kind: e.kind, placement: e.placement, version: e.currentVersion, origin: e.boundOrigin };
  return isSuspended(e, upstreamUrl) ? { ...line, suspended: { from: e.boundOrigin, to: upstreamOrigin(upstreamUrl) } } : line;
}
