import type { BundleContent } from "@/lib/enforcement/bundle";
import type { Principal } from "./token";

/**
 * Lookups over a bundle's live sections, built once per installed bundle (the
 * request path must not scan every revocation or approved client, nor parse
 * dates, on each call).
 */
interface Cutoff {
  user?: string;
  client?: string;
  serverId?: string;
  beforeMs: number;
}

interface LiveIndex {
  /** Revocations by tenant ("" for those naming no tenant), cut-off already parsed. */
  revocations: Map<string, Cutoff[]>;
  approvalRequired: Set<string>;
  /** `${tenant}\u0000${client}` of every approved client. */
  approved: Set<string>;
}

const indexes = new WeakMap<BundleContent, LiveIndex>();

function indexOf(content: BundleContent): LiveIndex {
  let ix = indexes.get(content);
  if (ix) return ix;
  const revocations = new Map<string, Cutoff[]>();
  for (const r of content.revocations ?? []) {
    const key = r.tenantId ?? "";
    // An unparseable cut-off revokes everything it names (fail closed).
    const parsed = Date.parse(r.before);
    const entry: Cutoff = { user: r.user, client: r.client, serverId: r.serverId, beforeMs: Number.isNaN(parsed) ? Infinity : parsed };
    const list = revocations.get(key);
    if (list) list.push(entry);
    else revocations.set(key, [entry]);
  }
  ix = {
    revocations,
    approvalRequired: new Set(content.clientApproval ?? []),
    approved: new Set((content.approvedClients ?? []).map((c) => `${c.tenantId}\u0000${c.clientId}`)),
  };
  indexes.set(content, ix);
  return ix;
}

/** Whether a revocation in the bundle rejects this principal's token on this server (issued before its cut-off). */
export function isRevoked(content: BundleContent, p: Principal, serverId: string): boolean {
  const ix = indexOf(content);
  const issuedMs = p.iat * 1000;
  for (const key of [p.tenantId, ""]) {
    for (const r of ix.revocations.get(key) ?? []) {
      if ((!r.user || r.user === p.user) && (!r.client || r.client === p.client) && (!r.serverId || r.serverId === serverId) && issuedMs < r.beforeMs) return true;
    }
  }
  return false;
}

/** Why the principal's client may not call tools (its tenant requires approval and has not approved it), or null. */
export function unapprovedClient(content: BundleContent, p: Principal): string | null {
  const ix = indexOf(content);
  if (!ix.approvalRequired.has(p.tenantId) || ix.approved.has(`${p.tenantId}\u0000${p.client}`)) return null;
  return `client ${p.client} is not approved for tenant ${p.tenantId}`;
}
