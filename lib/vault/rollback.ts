import "server-only";
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { servers, vaultEntries, vaultVersions } from "@/db/schema";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import type { Ctx } from "@/lib/context";
import { AppError, conflict } from "@/lib/errors";
import { recordEvent } from "@/lib/trail/record";
import { upstreamOrigin } from "./binding";
import { ROLLBACK_WINDOW_DAYS, rollbackProblem } from "./eligibility";
import { addDays, DEFAULT_GRACE_SECONDS, loadEntry, MAX_GRACE_SECONDS, namesOf, parse, publicEntry, supersedeCurrent, trailVersion, versionsOf, type PublicEntry } from "./service";

/*
 * Rotation's safety rails (issue 14): make an earlier version current again
 * (a rollback after a bad rotation) and end a grace period now (the old
 * secret leaked, or the upstream already revoked it). Both act on the row's
 * own tenant (loadEntry: 404 when unreadable, 403 without vault.write there),
 * record one trail row, and republish the live bundles in the same
 * transaction, so agents switch as they do after a rotation.
 */

export { ROLLBACK_WINDOW_DAYS };

const versionNumber = z.number().int("must be a whole number").min(1, "must be 1 or more").max(2_147_483_647);

export const makeCurrentInput = z.object({
  version: versionNumber.describe(
    `The earlier version to make current again: in its grace period, or retired less than ${ROLLBACK_WINDOW_DAYS} days ago, and stored for the server's current upstream origin`,
  ),
  replacing: versionNumber.describe("The version that is current as you saw it: answered 409 when another version became current since, so a rollback never undoes a rotation it did not see"),
  graceSeconds: z
    .number()
    .int("must be a whole number of seconds")
    .min(0, "must be 0 or more")
    .max(MAX_GRACE_SECONDS, "must be at most 30 days")
    .default(DEFAULT_GRACE_SECONDS)
    .describe("How long the version being replaced stays valid (0: retired at once)"),
});
export const endGraceInput = z.object({
  version: versionNumber.describe("The version in its grace period to stop accepting now (named, so the request never ends a grace period begun after you looked)"),
});
export type MakeCurrentInput = z.input<typeof makeCurrentInput>;
export type EndGraceInput = z.input<typeof endGraceInput>;

/**
 * Makes an earlier version current again. The version being replaced goes to
 * its grace period (`graceSeconds`, 0: retired at once), a pending scheduled
 * version is cancelled (as a rotation now cancels it), and the entry's age and
 * next rotation follow the restored secret's own activation (a restored old
 * secret may be due at once). Refused (409, nothing changed) when the entry is
 * retired, when `replacing` is no longer current, and when the version is not
 * eligible (rollbackProblem).
 */
export async function makeVersionCurrent(ctx: Ctx, entryId: string, raw: MakeCurrentInput, kek: Kek, now = new Date()): Promise<PublicEntry> {
  const input = parse(makeCurrentInput, raw);
  return ctx.db.transaction(async (tx) => {
    const { entry, server, adminTenant } = await loadEntry({ db: tx, actor: ctx.actor }, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is retired: none of its versions can be made current (create a new entry instead)");
    if (entry.currentVersion !== input.replacing)
      throw conflict(`Version ${entry.currentVersion} is current now, not version ${input.replacing}: someone changed this entry since you looked. Review the versions and try again`, "replacing");
    // The server row under lock: the origin check holds for the upstream as it is at commit.
    const [srv] = await tx.select({ upstreamUrl: servers.upstreamUrl }).from(servers).where(eq(servers.id, server.id)).for("share");
    const origin = upstreamOrigin(srv!.upstreamUrl);
    const versions = await versionsOf(tx, entry.id);
    const target = versions.find((v) => v.version === input.version);
    if (!target) throw new AppError("not_found", `Version ${input.version} of this entry does not exist`, [{ path: "version", message: `version ${input.version} does not exist` }]);
    const problem = rollbackProblem(target, entry.currentVersion, origin, now);
    if (problem) throw conflict(problem, "version");

    const { prev, scheduled, graceUntil } = await supersedeCurrent(tx, versions, input.graceSeconds, now);
    await tx.update(vaultVersions).set({ status: "current", graceUntil: null, retiredAt: null }).where(eq(vaultVersions.id, target.id));
    const since = target.activatesAt ?? target.createdAt;
    await tx
      .update(vaultEntries)
      .set({ currentVersion: target.version, boundOrigin: origin, nextRotationAt: addDays(since, entry.rotationIntervalDays), updatedAt: now })
      .where(eq(vaultEntries.id, entry.id));
    await recordEvent(tx, ctx.actor, {
      action: "vault.make_current",
      targetType: "vault_entry",
      targetId: entry.id,
      tenantId: adminTenant,
      before: { ...(prev ? trailVersion(prev) : { version: entry.currentVersion }), restoredWas: target.status, boundOrigin: entry.boundOrigin },
      after: {
        ...trailVersion(target),
        boundOrigin: origin,
        previousGraceUntil: prev && input.graceSeconds > 0 ? graceUntil.toISOString() : null,
        cancelledScheduled: scheduled?.version ?? null,
      },
    });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id}: version ${target.version} made current again`);
    const [fresh] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, entry.id));
    return publicEntry(fresh!, await versionsOf(tx, entry.id), await namesOf(tx, fresh!, { ...server, upstreamUrl: srv!.upstreamUrl }), now);
  });
}

/**
 * Ends a version's grace period now: it is retired at once, the broker
 * refuses it from the commit on (a version still named by an agent's older
 * bundle included), and the live bundles are republished. Only a version in
 * its grace period; 409 otherwise, nothing changed.
 */
export async function endGrace(ctx: Ctx, entryId: string, raw: EndGraceInput, kek: Kek, now = new Date()): Promise<PublicEntry> {
  const input = parse(endGraceInput, raw);
  return ctx.db.transaction(async (tx) => {
    const { entry, server, adminTenant } = await loadEntry({ db: tx, actor: ctx.actor }, entryId, true, true);
    if (entry.status === "retired") throw conflict("This entry is retired: every version has already stopped");
    const versions = await versionsOf(tx, entry.id);
    const v = versions.find((x) => x.version === input.version);
    if (!v) throw new AppError("not_found", `Version ${input.version} of this entry does not exist`, [{ path: "version", message: `version ${input.version} does not exist` }]);
    if (v.status !== "grace" || !v.graceUntil || v.graceUntil <= now) {
      const why =
        v.status === "current"
          ? "it is the current version: to stop it, rotate or make another version current"
          : v.status === "scheduled"
            ? "it is scheduled and not yet in use"
            : "its grace period has already ended";
      throw conflict(`Version ${v.version} is not in a grace period: ${why}`, "version");
    }
    const [changed] = await tx
      .update(vaultVersions)
      .set({ status: "retired", graceUntil: now, retiredAt: now })
      .where(and(eq(vaultVersions.id, v.id), eq(vaultVersions.status, "grace")))
      .returning({ id: vaultVersions.id });
    if (!changed) throw conflict(`Version ${v.version} is not in a grace period any more`, "version");
    await recordEvent(tx, ctx.actor, {
      action: "vault.end_grace",
      targetType: "vault_entry",
      targetId: entry.id,
      tenantId: adminTenant,
      before: { ...trailVersion(v), status: "grace", graceUntil: v.graceUntil.toISOString() },
      after: { version: v.version, status: "retired", retiredAt: now.toISOString(), currentVersion: entry.currentVersion },
    });
    await republishLiveBundles(tx, ctx.actor, kek, [server.id], `vault entry ${entry.id}: grace of version ${v.version} ended`);
    const [fresh] = await tx.select().from(vaultEntries).where(eq(vaultEntries.id, entry.id));
    return publicEntry(fresh!, await versionsOf(tx, entry.id), await namesOf(tx, fresh!, server), now);
  });
}
