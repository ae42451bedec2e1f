import { and, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { agents, enrollmentTokens, type Agent, type Bundle } from "@/db/schema";
import { hashSecret } from "@/lib/auth/actors";
import { AppError } from "@/lib/errors";
import { newId } from "@/lib/ids";
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

export const MAX_COUNTERS = 100;
export const MAX_ERRORS = 20;
export const MAX_ERROR_LENGTH = 1000;
/** lastError keeps at most this many characters of the reported errors. */
export const MAX_LAST_ERROR_LENGTH = 4000;

export const heartbeatInput = z.object({
  version: agentVersion,
  bundleRevision: z.number().int().min(0).nullable().default(null).describe("Revision the agent enforces now; null before the first bundle"),
  counters: z
    .record(
      z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9_.:-]+$/, "letters, digits and _ . : - only"),
      z.number().int("must be an integer").min(0).max(Number.MAX_SAFE_INTEGER),
    )
    .refine((c) => Object.keys(c).length <= MAX_COUNTERS, `at most ${MAX_COUNTERS} counters`)
    .default({})
    .describe("Cumulative counters since the agent started, e.g. { allowed: 12, denied: 3 }"),
  errors: z
    .array(z.string().max(MAX_ERROR_LENGTH, `each at most ${MAX_ERROR_LENGTH} characters`))
    .max(MAX_ERRORS, `at most ${MAX_ERRORS} errors`)
    .optional()
    .describe("Current errors, newest last; [] clears the last error, omitted leaves it"),
});
export type HeartbeatInput = z.input<typeof heartbeatInput>;

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

/** Stores what the agent reports: version, enforced revision, counters and errors. */
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
      ...(lastError !== undefined ? { lastError } : {}),
    })
    .where(and(eq(agents.id, agent.id), isNull(agents.revokedAt)));
}

/** The bundle as agents receive it (the shape of SignedBundle). */
export function servedBundle(b: Bundle) {
  return { revision: b.revision, sha256: b.sha256, keyId: b.keyId, signature: b.signature, content: b.content };
}
