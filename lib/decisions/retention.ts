import "server-only";
import { eq, lt, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { decisionQuarantine, settings } from "@/db/schema";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { forbidden } from "@/lib/errors";
import { startJob, type Job } from "@/lib/jobs/scheduler";
import { recordEvent } from "@/lib/trail/record";
import { createPartitionsAhead, dropPartitionsBefore, forgetPartitions, retentionCutoff } from "./partitions";
import { deleteRollupsBefore } from "./rollups";

/** Decision retention when no one has set it (the column's default). */
export const DEFAULT_RETENTION_DAYS = 90;
const HOUR = 3_600_000;

/** PATCH /api/v1/admin/settings: every field optional, at least one. */
export const settingsInput = z
  .object({
    decisionRetentionDays: z.number().int().min(1).max(3650).optional().describe("Days of decisions kept; whole daily partitions older than this are dropped (1..3650)"),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, "Send at least one setting");

export interface Settings {
  decisionRetentionDays: number;
  updatedAt: string | null;
}

async function loadSettings(db: Db): Promise<Settings> {
  const [row] = await db.select().from(settings).where(eq(settings.id, 1));
  return { decisionRetentionDays: row?.decisionRetentionDays ?? DEFAULT_RETENTION_DAYS, updatedAt: row?.updatedAt?.toISOString() ?? null };
}

/** The decision retention in days (the default until an owner sets it). */
export const getRetentionDays = async (db: Db) => (await loadSettings(db)).decisionRetentionDays;

/** The instance settings: owners and global auditors read them (they apply to every tenant). */
export async function getSettings(ctx: Ctx): Promise<Settings> {
  if (!seesAllTenants(ctx.actor)) throw forbidden("Only owners and global auditors read the instance settings");
  return loadSettings(ctx.db);
}

/** Changes instance settings (owners only); the trail keeps before and after. */
export async function updateSettings(ctx: Ctx, input: z.infer<typeof settingsInput>): Promise<Settings> {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only owners change the instance settings");
  return ctx.db.transaction(async (tx) => {
    const before = await loadSettings(tx);
    const days = input.decisionRetentionDays ?? before.decisionRetentionDays;
    await tx
      .insert(settings)
      .values({ id: 1, decisionRetentionDays: days })
      .onConflictDoUpdate({ target: settings.id, set: { decisionRetentionDays: days, updatedAt: new Date() } });
    const after = await loadSettings(tx);
    await recordEvent(tx, ctx.actor, {
      action: "settings.update",
      targetType: "settings",
      targetId: "1",
      tenantId: null,
      before: { decisionRetentionDays: before.decisionRetentionDays },
      after: { decisionRetentionDays: after.decisionRetentionDays },
    });
    return after;
  });
}

/**
 * One retention pass: creates the coming week's partitions, then drops whole
 * partitions older than the retention, recording a system trail row in the
 * same transaction when it dropped something, and deletes quarantined
 * decision lines received before the retention. Returns the dropped names.
 */
export async function runRetention(db: Db, now = Date.now()): Promise<string[]> {
  await createPartitionsAhead(db, 7, now);
  const days = await getRetentionDays(db);
  const dropped = await db.transaction(async (tx) => {
    // Several processes may share the database: one pass at a time, so each drop is recorded once.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('mandate.decisions.retention'))`);
    const names = await dropPartitionsBefore(tx, days, now);
    // The rollups of the dropped days go with them (the cutoff is the first kept partition's start).
    await deleteRollupsBefore(tx, retentionCutoff(days, now));
    // Quarantined lines are kept as long as decisions, no longer (nothing else bounds the table).
    await tx.delete(decisionQuarantine).where(lt(decisionQuarantine.receivedAt, new Date(now - days * 86_400_000)));
    if (names.length) {
      await recordEvent(tx, "system", {
        action: "decisions.retention",
        targetType: "decisions",
        targetId: "partitions",
        tenantId: null,
        after: { retentionDays: days, dropped: names },
      });
    }
    return names;
  });
  forgetPartitions(db, dropped);
  return dropped;
}

/** The retention job: one pass per hour across every replica sharing the database (lib/jobs/scheduler.ts). */
export const retentionJob = (db: Db, everyMs = HOUR): Job<string[]> => ({
  name: "decisions.retention",
  everyMs,
  run: async (tx) => {
    const dropped = await runRetention(tx);
    // The pass ran on the job's transaction: the handle's memory of partitions forgets the dropped ones too.
    forgetPartitions(db, dropped);
    return dropped;
  },
});

/** Runs the retention job on its timer (unref'd); once per interval across replicas, never overlapping. */
export function startRetentionJob(db: Db, everyMs = HOUR): () => void {
  return startJob(db, retentionJob(db, everyMs), (r) => {
    if (r.status === "ran" && r.result.length) console.log(`[mandate] decision retention dropped ${r.result.length} partition(s): ${r.result.join(", ")}`);
  });
}
