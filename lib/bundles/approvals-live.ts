import "server-only";
import { and, inArray, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { approvalRequests, type ApprovalRequest } from "@/db/schema";
import { similarHash, type BundleApproval } from "@/lib/enforcement/approval";

/**
 * How long a decided request stays in the live section after it stops
 * counting: agents can still say "expired at …" or "rejected by …" instead of
 * asking again at once. Past it, a retried call files a new request.
 */
export const LIVE_AFTER_EXPIRY_MS = 60 * 60 * 1000;

/** One decided request as a line of the bundle's live section `approvals`. */
export function approvalLine(r: ApprovalRequest): BundleApproval | null {
  // An approval of one call allows one execution: once executed it leaves the live section (agents
  // consume it themselves at once, agent/approval.ts); approved similar calls hold until their window ends.
  const approved = r.status === "approved" || (r.status === "executed" && r.scope === "similar" && r.approvalExpiresAt);
  if (!approved && r.status !== "rejected") return null;
  const until = approved ? r.approvalExpiresAt : r.expiresAt;
  if (!until) return null;
  const scope = approved ? r.scope : "call";
  return {
    id: r.id,
    tenantId: r.tenantId,
    hash: scope === "similar" ? similarHash({ tenantId: r.tenantId, serverId: r.serverId, tool: r.tool, user: r.userId, client: r.clientId }) : r.callHash,
    scope,
    status: approved ? "approved" : "rejected",
    decidedBy: r.decidedByLabel ?? "an approver",
    reason: r.reason,
    expiresAt: until.toISOString(),
  };
}

/** The live section `approvals` for these servers and tenants: decided requests until an hour after they stop counting, sorted by id. */
export async function liveApprovals(db: Db, serverIds: string[], tenantIds: string[]): Promise<BundleApproval[]> {
  if (!serverIds.length || !tenantIds.length) return [];
  const since = new Date(Date.now() - LIVE_AFTER_EXPIRY_MS);
  const rows = await db
    .select()
    .from(approvalRequests)
    .where(
      and(
        inArray(approvalRequests.serverId, serverIds),
        inArray(approvalRequests.tenantId, tenantIds),
        inArray(approvalRequests.status, ["approved", "rejected", "executed"]),
        sql`coalesce(${approvalRequests.approvalExpiresAt}, ${approvalRequests.expiresAt}) > ${since.toISOString()}::timestamptz`,
      ),
    );
  const out: BundleApproval[] = [];
  for (const r of rows) {
    const line = approvalLine(r);
    if (line) out.push(line);
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
