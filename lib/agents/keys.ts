import { randomBytes } from "node:crypto";

export { secretMatches } from "@/lib/auth/secrets";

/**
 * Agent credentials, in the style of API tokens: `<prefix><id hex>.<secret>`.
 * Only the SHA-256 of the secret is stored; the whole value is shown once.
 *
 * - enrollment tokens `mde_<enr id hex>.<secret>`: one-time, short-lived, made by an owner;
 * - agent keys `mda_<agt id hex>.<secret>`: the agent's bearer credential.
 */
export const ENROLLMENT_TOKEN_PREFIX = "mde_";
export const AGENT_KEY_PREFIX = "mda_";

/** A fresh 256-bit secret, base64url (43 characters). */
export const newSecret = () => randomBytes(32).toString("base64url");

export const formatEnrollmentToken = (id: string, secret: string) => `${ENROLLMENT_TOKEN_PREFIX}${id.slice(id.indexOf("_") + 1)}.${secret}`;
export const formatAgentKey = (id: string, secret: string) => `${AGENT_KEY_PREFIX}${id.slice(id.indexOf("_") + 1)}.${secret}`;

/** Splits `mde_<id hex>.<secret>` into the enrollment token id and its secret. */
export function parseEnrollmentToken(raw: string): { id: string; secret: string } | null {
  const m = /^mde_([0-9a-f]{32})\.([A-Za-z0-9_-]{32,64})$/.exec(raw);
  return m ? { id: `enr_${m[1]}`, secret: m[2]! } : null;
}

/** Splits `mda_<id hex>.<secret>` into the agent id and its secret. */
export function parseAgentKey(raw: string): { id: string; secret: string } | null {
  const m = /^mda_([0-9a-f]{32})\.([A-Za-z0-9_-]{32,64})$/.exec(raw);
  return m ? { id: `agt_${m[1]}`, secret: m[2]! } : null;
}
