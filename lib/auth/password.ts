import { randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";
import { z } from "zod";

/** A password a person chooses: long enough, and bounded before it reaches Argon2. */
export const newPasswordSchema = z.string().min(12, "must be at least 12 characters").max(256);

// Argon2id is the package's default algorithm; OWASP's minimum parameters.
const params = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

export const hashPassword = (password: string) => hash(password, params);

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

/** A random password for one-time use: only the first owner's, printed to the operator's console (must be changed at first sign-in). */
export const generatePassword = () => randomBytes(18).toString("base64url");

// Verified when the e-mail is unknown, so a miss costs as long as a hit.
let dummy: Promise<string> | undefined;
export const dummyHash = () => (dummy ??= hashPassword(generatePassword()));
