import { createHash, timingSafeEqual } from "node:crypto";

/** SHA-256 (hex) of a high-entropy secret (API tokens, agent keys, enrollment tokens): what the database keeps. */
export const hashSecret = (secret: string) => createHash("sha256").update(secret).digest("hex");

// Compared against when the row is missing, so an unknown id costs the same as a wrong secret.
const DUMMY_HASH = "0".repeat(64);

/** Constant-time check of `secret` against a stored SHA-256 hex digest (or none). */
export function secretMatches(secret: string, storedHash: string | null | undefined): boolean {
  const a = Buffer.from(hashSecret(secret), "hex");
  const b = Buffer.from(storedHash ?? DUMMY_HASH, "hex");
  const equal = a.length === b.length && timingSafeEqual(a, b);
  return equal && storedHash != null;
}
