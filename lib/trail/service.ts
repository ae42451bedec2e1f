import { and, desc, eq, gte, ilike, inArray, lt, lte, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import { auditEvents } from "@/db/schema";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { AppError } from "@/lib/errors";
import { likePattern } from "@/lib/pagination";

export const trailQuery = z.object({
  tenantId: z.string().optional(),
  action: z.string().max(100).optional().describe("Exact action, e.g. server.update, or a prefix ending in '.' (server.)"),
  actor: z.string().max(200).optional().describe("Actor id or label substring"),
  targetId: z.string().max(100).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  cursor: z.string().max(200).optional().describe("Opaque cursor from the previous page"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

function decodeCursor(c: string): { at: Date; id: string } {
  try {
    const [at, id] = Buffer.from(c, "base64url").toString("utf8").split("|");
    const d = new Date(at ?? "");
    if (!id || Number.isNaN(d.getTime())) throw new Error("bad cursor");
    return { at: d, id };
  } catch {
    throw new AppError("bad_request", "Invalid cursor");
  }
}

/**
 * The admin trail, newest first, with keyset pagination on (at, id). Tenant
 * admins see only events of their tenants; owners and auditors see all.
 */
export async function listTrail(ctx: Ctx, q: z.infer<typeof trailQuery>) {
  const filters: SQL[] = [];
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    if (mine.length === 0) return { items: [], nextCursor: null };
    filters.push(inArray(auditEvents.tenantId, mine));
  }
  if (q.tenantId) filters.push(eq(auditEvents.tenantId, q.tenantId));
  if (q.action) filters.push(q.action.endsWith(".") ? ilike(auditEvents.action, `${q.action.replace(/[\\%_]/g, "\\$&")}%`) : eq(auditEvents.action, q.action));
  if (q.actor) filters.push(or(eq(auditEvents.actorId, q.actor), ilike(auditEvents.actorLabel, likePattern(q.actor)))!);
  if (q.targetId) filters.push(eq(auditEvents.targetId, q.targetId));
  if (q.from) filters.push(gte(auditEvents.at, new Date(q.from)));
  if (q.to) filters.push(lte(auditEvents.at, new Date(q.to)));
  if (q.cursor) {
    const c = decodeCursor(q.cursor);
    filters.push(or(lt(auditEvents.at, c.at), and(eq(auditEvents.at, c.at), lt(auditEvents.id, c.id)))!);
  }
  const rows = await ctx.db
    .select()
    .from(auditEvents)
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(desc(auditEvents.at), desc(auditEvents.id))
    .limit(q.limit + 1);
  const more = rows.length > q.limit;
  const items = rows.slice(0, q.limit).map((r) => ({ ...r, at: r.at.toISOString() }));
  const last = items[items.length - 1];
  return {
    items,
    nextCursor: more && last ? Buffer.from(`${last.at}|${last.id}`).toString("base64url") : null,
  };
}

