import { and, eq, gte, ilike, inArray, lte, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { auditEvents } from "@/db/schema";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { exportFilename, exportFormat, keysetStream, type ExportFormat } from "@/lib/decisions/export";
import { AppError } from "@/lib/errors";
import { likePattern } from "@/lib/pagination";
import { resolveTargetNames } from "./names";

/** The trail filter shared by the list and the export. */
export const trailFilter = z.object({
  tenantId: z.string().optional(),
  action: z.string().max(100).optional().describe("Exact action, e.g. server.update, or a prefix ending in '.' (server.)"),
  actor: z.string().max(200).optional().describe("Actor id or label substring"),
  targetType: z.string().max(100).optional().describe("Exact target type, e.g. server, tool, policy"),
  targetId: z.string().max(100).optional(),
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
});

export const trailQuery = trailFilter.extend({
  cursor: z.string().max(200).optional().describe("Opaque cursor from the previous page"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export const trailExportQuery = trailFilter.extend({ format: exportFormat });

// `at` keeps microseconds: the cursor carries PostgreSQL's own text of it so
// the keyset comparison is exact (a JS Date would round to milliseconds and
// skip rows in the same millisecond).
const atText = sql<string>`${auditEvents.at}::text`;

function decodeCursor(c: string): { at: string; id: string } {
  const [at, id, extra] = Buffer.from(c, "base64url").toString("utf8").split("|");
  const ok = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d(:?\d\d)?)?$/.test(at ?? "");
  if (!ok || !id || extra !== undefined || Number.isNaN(new Date((at ?? "").replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00")).getTime())) {
    throw new AppError("bad_request", "Invalid cursor");
  }
  return { at: at!, id };
}

type TrailFilter = z.infer<typeof trailFilter>;

/** WHERE conditions of a trail filter with tenant scoping; null when nothing is visible. */
function trailConditions(ctx: Ctx, q: TrailFilter): SQL[] | null {
  const filters: SQL[] = [];
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    if (mine.length === 0) return null;
    filters.push(inArray(auditEvents.tenantId, mine));
  }
  if (q.tenantId) filters.push(eq(auditEvents.tenantId, q.tenantId));
  if (q.action) filters.push(q.action.endsWith(".") ? ilike(auditEvents.action, `${q.action.replace(/[\\%_]/g, "\\$&")}%`) : eq(auditEvents.action, q.action));
  if (q.actor) filters.push(or(eq(auditEvents.actorId, q.actor), ilike(auditEvents.actorLabel, likePattern(q.actor)))!);
  if (q.targetType) filters.push(eq(auditEvents.targetType, q.targetType));
  if (q.targetId) filters.push(eq(auditEvents.targetId, q.targetId));
  if (q.from) filters.push(gte(auditEvents.at, new Date(q.from)));
  if (q.to) filters.push(lte(auditEvents.at, new Date(q.to)));
  return filters;
}

async function trailPage(ctx: Ctx, conds: SQL[], after: { at: string; id: string } | null, limit: number) {
  const where = [...conds];
  if (after) where.push(sql`${auditEvents.at} <= ${after.at}::timestamptz and (${auditEvents.at}, ${auditEvents.id}) < (${after.at}::timestamptz, ${after.id}::text)`);
  const rows = await ctx.db
    .select({ row: auditEvents, atKey: atText })
    .from(auditEvents)
    .where(where.length ? and(...where) : undefined)
    // NULLS LAST matches the (at DESC, id DESC) index as drizzle declares it.
    .orderBy(sql`${auditEvents.at} desc nulls last`, sql`${auditEvents.id} desc nulls last`)
    .limit(limit);
  return rows.map(({ row, atKey }) => ({ ...row, at: row.at.toISOString(), atKey }));
}

/**
 * The admin trail, newest first, with keyset pagination on (at, id). Tenant
 * admins see only events of their tenants; owners and auditors see all.
 * `names` gives each target's name and link (lib/trail/names.ts).
 */
export async function listTrail(ctx: Ctx, q: z.infer<typeof trailQuery>) {
  const conds = trailConditions(ctx, q);
  if (!conds) return { items: [], nextCursor: null, names: {} };
  const rows = await trailPage(ctx, conds, q.cursor ? decodeCursor(q.cursor) : null, q.limit + 1);
  const more = rows.length > q.limit;
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    items: page.map(({ atKey: _k, ...e }) => e),
    nextCursor: more && last ? Buffer.from(`${last.atKey}|${last.id}`).toString("base64url") : null,
    // The targets' names and links, for this page only, scoped to the viewer's tenants.
    names: await resolveTargetNames(ctx, page),
  };
}

/** The filtered trail as a streamed CSV or NDJSON export (same scoping as the list). */
export function exportTrail(
  ctx: Ctx,
  q: z.infer<typeof trailExportQuery>,
  opts: { maxRows?: number; chunk?: number } = {},
): { stream: ReadableStream<Uint8Array>; filename: string; format: ExportFormat } {
  const conds = trailConditions(ctx, q);
  const format = q.format ?? "csv";
  type Row = Awaited<ReturnType<typeof trailPage>>[number];
  const stream = keysetStream<Row>(
    {
      page: (after, limit) => (conds ? trailPage(ctx, conds, after && { at: after.atKey, id: after.id }, limit) : Promise.resolve([])),
      csvHeader: ["id", "at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id", "tenant_id", "before", "after"],
      csvRow: (e) => [
        e.id,
        e.at,
        e.actorType,
        e.actorId,
        e.actorLabel,
        e.action,
        e.targetType,
        e.targetId,
        e.tenantId,
        e.before === null ? "" : JSON.stringify(e.before),
        e.after === null ? "" : JSON.stringify(e.after),
      ],
      json: ({ atKey: _k, ...e }) => e,
    },
    format,
    opts,
  );
  return { stream, filename: exportFilename("admin-trail", format), format };
}
