import { randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";

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

/** A random password for one-time use (shown once, must be changed at first sign-in). */
export const generatePassword = () => randomBytes(18).toString("base64url");

// Verified when the e-mail is unknown, so a miss costs as long as a hit.
let dummy: Promise<string> | undefined;
export const dummyHash = () => (dummy ??= hashPassword(generatePassword()));
