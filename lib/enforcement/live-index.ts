import type { BundleContent } from "./bundle";

/**
 * Lookups over a bundle's live sections (revocations, client approval), built
 * once per bundle content (the request path must not scan every revocation or
 * approved client, nor parse dates, on each call). Pure: shared by the agent,
 * the simulator and impact replay through `decide()` (lib/enforcement/decide.ts).
 */
interface Cutoff {
  user?: string;
  client?: string;
  serverId?: string;
  beforeMs: number;
}

/** The parts of a principal the live sections test. */
export interface LivePrincipal {
  tenantId: string;
  user: string;
  client: string;
  /** Issued-at, seconds since the epoch. */
  iat: number;
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

/** Whether a revocation in the bundle rejects this principal's token on this server (issued before its cut-off). An unreadable iat counts as issued long ago. */
export function isRevoked(content: BundleContent, p: LivePrincipal, serverId: string): boolean {
  const ix = indexOf(content);
  const issuedMs = Number.isFinite(p.iat) ? p.iat * 1000 : -Infinity;
  for (const key of [p.tenantId, ""]) {
    for (const r of ix.revocations.get(key) ?? []) {
      if ((!r.user || r.user === p.user) && (!r.client || r.client === p.client) && (!r.serverId || r.serverId === serverId) && !(issuedMs >= r.beforeMs)) return true;
    }
  }
  return false;
}

/** Why the principal's client may not call tools (its tenant requires approval and has not approved it), or null. */
export function unapprovedClient(content: BundleContent, p: Pick<LivePrincipal, "tenantId" | "client">): string | null {
  const ix = indexOf(content);
  if (!ix.approvalRequired.has(p.tenantId) || ix.approved.has(`${p.tenantId}\u0000${p.client}`)) return null;
  return `client ${p.client} is not approved for tenant ${p.tenantId}`;
}
