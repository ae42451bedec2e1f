import "server-only";
import { randomUUID } from "node:crypto";
import { and, asc, count, eq } from "drizzle-orm";
import { z } from "zod";
import { savedViews } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { AppError, notFound } from "@/lib/errors";

/** At most this many saved views per user and page. */
export const VIEWS_MAX = 50;

/** A saved view: a name and the log's address-bar query (no decision data). */
export const savedViewInput = z.object({
  name: z.string().trim().min(1).max(60).describe("Name of the view (unique per user: saving a name again replaces it)"),
  query: z
    .string()
    .max(2000)
    .regex(/^[\w%&=.+~:*-]*$/, "a URL query string")
    .describe("The decision log's filter as a URL query string, e.g. `outcome=deny&tool=delete_file`"),
});

const viewOut = (v: typeof savedViews.$inferSelect) => ({ id: v.id, name: v.name, query: v.query, createdAt: v.createdAt.toISOString() });

/** The caller's saved views of the decision log, by name. */
export async function listViews(ctx: Ctx) {
  const rows = await ctx.db
    .select()
    .from(savedViews)
    .where(and(eq(savedViews.userId, ctx.actor.userId), eq(savedViews.page, "audit")))
    .orderBy(asc(savedViews.name))
    .limit(VIEWS_MAX);
  return { items: rows.map(viewOut) };
}

/** Saves a view for the caller (the same name is replaced). */
export async function saveView(ctx: Ctx, input: z.infer<typeof savedViewInput>) {
  const mine = and(eq(savedViews.userId, ctx.actor.userId), eq(savedViews.page, "audit"));
  const [{ n } = { n: 0 }] = await ctx.db.select({ n: count() }).from(savedViews).where(mine);
  const [existing] = await ctx.db
    .select({ id: savedViews.id })
    .from(savedViews)
    .where(and(mine, eq(savedViews.name, input.name)))
    .limit(1);
  if (!existing && Number(n) >= VIEWS_MAX) throw new AppError("validation_failed", `At most ${VIEWS_MAX} saved views: delete one first`, [{ path: "name", message: "too many saved views" }]);
  const [row] = await ctx.db
    .insert(savedViews)
    .values({ id: randomUUID(), userId: ctx.actor.userId, page: "audit", name: input.name, query: input.query })
    .onConflictDoUpdate({ target: [savedViews.userId, savedViews.page, savedViews.name], set: { query: input.query } })
    .returning();
  return viewOut(row!);
}

/** Deletes one of the caller's views (another user's is a 404). */
export async function deleteView(ctx: Ctx, viewId: string) {
  const gone = await ctx.db
    .delete(savedViews)
    .where(and(eq(savedViews.id, viewId), eq(savedViews.userId, ctx.actor.userId)))
    .returning({ id: savedViews.id });
  if (gone.length === 0) throw notFound("Saved view");
}
