import type { Db } from "@/db/client";
import { auditEvents } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import { newId } from "@/lib/ids";

export interface TrailEntry {
  action: string;
  targetType: string;
  targetId: string;
  tenantId: string | null;
  before?: unknown;
  after?: unknown;
}

/** A data-plane agent acting (e.g. resolving a vault credential): recorded with actor type "agent". */
export interface AgentActor {
  type: "agent";
  id: string;
  label: string;
}

/**
 * Records one admin change. Call it inside the transaction that makes the
 * change, so the trail and the data can never disagree.
 */
export async function recordEvent(db: Db, actor: Actor | AgentActor | "system", entry: TrailEntry): Promise<void> {
  const who = actor === "system" ? { actorType: "system" as const, actorId: "system", actorLabel: "system" } : { actorType: actor.type, actorId: actor.id, actorLabel: actor.label };
  await db.insert(auditEvents).values({
    id: newId("event"),
    // Millisecond precision, so the (at, id) keyset cursor round-trips exactly through JS dates.
    at: new Date(),
    ...who,
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    tenantId: entry.tenantId,
    before: entry.before ?? null,
    after: entry.after ?? null,
  });
}
