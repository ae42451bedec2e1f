import { and, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { agents, enrollmentTokens, type Agent, type Bundle } from "@/db/schema";
import { hashSecret } from "@/lib/auth/actors";
import { AppError } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { heartbeatInput, type HeartbeatInput } from "@/lib/enforcement/heartbeat";
import { recordEvent } from "@/lib/trail/record";
import { formatAgentKey, newSecret, parseAgentKey, parseEnrollmentToken, secretMatches } from "./keys";

/*
 * The agent side: no admin actor, only the credentials an agent holds. An
 * enrollment token (mde_…) is exchanged once for an agent key (mda_…); the
 * key then authenticates every call of the agent API.
 */

const agentName = z.string().trim().min(1, "must not be empty").max(120, "must be at most 120 characters");
const agentVersion = z.string().trim().min(1, "must not be empty").max(64, "must be at most 64 characters");

export const enrollInput = z.object({
  token: z.string().max(200).describe("The enrollment token (mde_…), usable once"),
  name: agentName.describe("The agent's name, e.g. its host name"),
  version: agentVersion.describe("The agent's software version"),
});

/** lastError keeps at most this many characters of the reported errors. */
export const MAX_LAST_ERROR_LENGTH = 4000;

// The heartbeat's wire schema is shared with the agent (lib/enforcement/heartbeat.ts).
export { heartbeatInput, MAX_COUNTERS, MAX_ERROR_LENGTH, MAX_ERRORS, type HeartbeatInput } from "@/lib/enforcement/heartbeat";

/**
 * Exchanges a one-time enrollment token for an agent of its fleet. The token
 * row is locked for the whole transaction, so two concurrent enrollments with
 * the same token cannot both succeed. The agent key is in this answer only.
 */
export async function enrollAgent(db: Db, input: z.input<typeof enrollInput>, now = new Date()) {
  const v = enrollInput.parse(input);
  const parsed = parseEnrollmentToken(v.token);
  if (!parsed) throw new AppError("unauthenticated", "Enrollment token is invalid or revoked");
  const agentId = newId("agent");
  const secret = newSecret();
  const fleetId = await db.transaction(async (tx) => {
    const [tok] = await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, parsed.id)).for("update");
    if (!secretMatches(parsed.secret, tok?.secretHash) || !tok) throw new AppError("unauthenticated", "Enrollment token is invalid or revoked");
    if (tok.usedAt) throw new AppError("unauthenticated", "Enrollment token already used");
    if (tok.expiresAt <= now) throw new AppError("unauthenticated", "Enrollment token expired");
    await tx.insert(agents).values({ id: agentId, fleetId: tok.fleetId, name: v.name, version: v.version, keyHash: hashSecret(secret), lastSeenAt: now });
    await tx
      .update(enrollmentTokens)
      .set({ usedAt: now, usedByAgentId: agentId })
      .where(and(eq(enrollmentTokens.id, tok.id), isNull(enrollmentTokens.usedAt)));
    await recordEvent(tx, "system", {
      action: "agent.enroll",
      targetType: "agent",
      targetId: agentId,
      tenantId: null,
      after: { fleetId: tok.fleetId, name: v.name, version: v.version, enrollmentTokenId: tok.id },
    });
    return tok.fleetId;
  });
  return { agentId, fleetId, agentKey: formatAgentKey(agentId, secret) };
}

/** The agent of a key, or null (malformed, unknown, wrong secret or revoked). Constant-time on the secret. */
export async function authenticateAgent(db: Db, rawKey: string): Promise<Agent | null> {
  const parsed = parseAgentKey(rawKey);
  if (!parsed) return null;
  const [agent] = await db.select().from(agents).where(eq(agents.id, parsed.id));
  if (!secretMatches(parsed.secret, agent?.keyHash) || !agent) return null;
  if (agent.revokedAt) return null;
  return agent;
}

/** Marks the agent as seen now. */
export async function touchAgent(db: Db, agentId: string, now = new Date()): Promise<void> {
  await db.update(agents).set({ lastSeenAt: now }).where(eq(agents.id, agentId));
}

/** Stores what the agent reports: version, enforced revision, counters, errors and the credential versions it holds. */
export async function recordHeartbeat(db: Db, agent: Pick<Agent, "id">, input: HeartbeatInput, now = new Date()): Promise<void> {
  const v = heartbeatInput.parse(input);
  const lastError = v.errors === undefined ? undefined : v.errors.length ? v.errors.join("\n").slice(-MAX_LAST_ERROR_LENGTH) : null;
  await db
    .update(agents)
    .set({
      lastSeenAt: now,
      version: v.version,
      bundleRevision: v.bundleRevision,
      counters: v.counters,
      // Replaced on every heartbeat: an agent that stops reporting (an older version) shows as unknown again.
      credentialVersions: v.credentials ? Object.fromEntries(v.credentials.map((c) => [c.entryId, c.version])) : null,
      ...(lastError !== undefined ? { lastError } : {}),
    })
    .where(and(eq(agents.id, agent.id), isNull(agents.revokedAt)));
}

/** The bundle as agents receive it (the shape of SignedBundle). */
export function servedBundle(b: Bundle) {
  return { revision: b.revision, sha256: b.sha256, keyId: b.keyId, signature: b.signature, content: b.content };
}
