import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { auditEvents, type PolicyRule } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { AppError, notFound } from "@/lib/errors";
import { getPolicy, updatePolicy } from "./service";
import { policyRuleSchema } from "./rule";

export const policyRestoreInput = z.object({
  eventId: z.string().min(1).max(100).describe("The admin-trail event of this policy (policy.create, policy.update or policy.restore) whose resulting version is brought back"),
  baseUpdatedAt: z.iso.datetime({ offset: true }).optional().describe("The policy's updatedAt as the page loaded it: refused (409) if it changed since"),
});

/** Trail events whose `after` is a whole version of the policy. */
export const RESTORABLE_ACTIONS = ["policy.create", "policy.update", "policy.restore"] as const;

/** A version as the trail stored it (older events lack `enabled` and, for rules, `rule`). */
const versionSchema = z.object({
  name: z.string(),
  enabled: z.boolean().optional(),
  cedar: z.string(),
  rule: policyRuleSchema.optional(),
});

/**
 * "Restore this version": the policy becomes what one of its trail events
 * left it as (name, enabled, Cedar, or the rule of a rule policy), as a new
 * draft. It goes through updatePolicy, the service of an edit: the same
 * authorization, validation against today's schema, optimistic concurrency,
 * and a trail record (policy.restore, naming the event restored from).
 * Nothing is enforced until a bundle is published.
 */
export async function restorePolicyVersion(ctx: Ctx, policyId: string, input: z.infer<typeof policyRestoreInput>) {
  const current = await getPolicy(ctx, policyId); // 404 for a policy the actor cannot read
  const [event] = await ctx.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.id, input.eventId), eq(auditEvents.targetType, "policy"), eq(auditEvents.targetId, current.id)));
  // The event must be this policy's and of its tenant (trail rows of a policy carry the policy's tenant).
  if (!event || event.tenantId !== current.tenantId) throw notFound("Version");
  if (!(RESTORABLE_ACTIONS as readonly string[]).includes(event.action)) throw new AppError("bad_request", `A ${event.action} event holds no version to restore`);
  const parsed = versionSchema.safeParse(event.after);
  if (!parsed.success) throw new AppError("bad_request", "This event did not record the whole policy: it cannot be restored");
  const v = parsed.data;
  const body =
    current.kind === "rule"
      ? v.rule
        ? { rule: v.rule as PolicyRule }
        : (() => {
            throw new AppError("bad_request", "This version of the rule was recorded before rules were kept in the trail: only its Cedar is known, so it cannot be restored");
          })()
      : { cedar: v.cedar };
  return updatePolicy(
    ctx,
    current.id,
    { name: v.name, ...(v.enabled === undefined ? {} : { enabled: v.enabled }), ...body, baseUpdatedAt: input.baseUpdatedAt },
    { restoredFrom: { eventId: event.id, at: event.at.toISOString() } },
  );
}
