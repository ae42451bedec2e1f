import "server-only";
import { count, desc, max, sql } from "drizzle-orm";
import { z } from "zod";
import { decisionQuarantine } from "@/db/schema";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { forbidden } from "@/lib/errors";

export const quarantineQuery = z.object({
  limit: z.coerce.number().int().min(0).max(200).default(50).describe("How many of the most recent quarantined lines to return (0-200, default 50)"),
});

/**
 * Decision lines agents sent that ingest quarantined instead of storing (see
 * docs/audit.md): how many, per fleet and agent, and the most recent ones with
 * their problem. A quarantined line's tenant is not trusted (that is often why
 * it is there), so only owners and global auditors, who read every tenant,
 * see them.
 */
export async function quarantineSummary(ctx: Ctx, q: z.infer<typeof quarantineQuery>) {
  if (!seesAllTenants(ctx.actor)) throw forbidden("Only owners and global auditors see quarantined decision lines");
  const dq = decisionQuarantine;
  const [[total], byAgent, recent, [last24h]] = await Promise.all([
    ctx.db.select({ n: count() }).from(dq),
    ctx.db
      .select({ fleetId: dq.fleetId, agentId: dq.agentId, count: count(), lastAt: max(dq.receivedAt) })
      .from(dq)
      .groupBy(dq.fleetId, dq.agentId)
      .orderBy(desc(max(dq.receivedAt)))
      .limit(500),
    q.limit
      ? ctx.db
          .select({ id: dq.id, fleetId: dq.fleetId, agentId: dq.agentId, receivedAt: dq.receivedAt, decisionId: dq.decisionId, problem: dq.problem, rawBytes: dq.rawBytes, raw: dq.raw })
          .from(dq)
          .orderBy(desc(dq.receivedAt))
          .limit(q.limit)
      : [],
    ctx.db
      .select({ n: count() })
      .from(dq)
      .where(sql`${dq.receivedAt} > now() - interval '24 hours'`),
  ]);
  return { total: total?.n ?? 0, last24h: last24h?.n ?? 0, byAgent, recent };
}
