import type { BlockList } from "node:net";
import type { Db } from "@/db/client";
import type { User } from "@/db/schema";
import { clientAddress } from "./client-address";
import { accountKey, addressKey, clearAttempts, refundAttempt, sweepCounters, takeAttempt } from "./rate-limit";
import { verifyCredentials } from "./users";

/** Sign-in throttling settings (from MANDATE_LOGIN_* and MANDATE_TRUSTED_PROXIES). */
export interface SignInSettings {
  /** Failed attempts allowed per account per window, whatever address they come from; an address gets 4×. */
  maxFailures: number;
  windowSeconds: number;
  trustedProxies: BlockList | null;
}

/** Too many attempts for this account or address in the current window. */
export class SignInThrottled extends Error {
  constructor(readonly retryAfter: number) {
    super(`Too many failed sign-ins. Try again in ${retryAfter} seconds.`);
  }
}

// Beyond these, a credential cannot be right; refused before any work.
const MAX_EMAIL = 254;
const MAX_PASSWORD = 256;

/**
 * Checks an e-mail and password under the sign-in limits: each attempt is
 * counted for the account (whatever the address) and for the client address
 * before the password is verified; a success clears the account's count and
 * gives the address its attempt back. Throws SignInThrottled when over a limit.
 */
export async function signInWithPassword(
  db: Db,
  credentials: { email?: unknown; password?: unknown } | undefined,
  headers: Headers | Record<string, string | string[] | undefined> | undefined,
  settings: SignInSettings,
): Promise<User | null> {
  const email = typeof credentials?.email === "string" ? credentials.email.trim().toLowerCase() : "";
  const password = typeof credentials?.password === "string" ? credentials.password : "";
  const acct = accountKey(email.slice(0, MAX_EMAIL + 1));
  const addr = addressKey(clientAddress(headers, settings.trustedProxies));
  const wait = await takeAttempt(
    db,
    [
      { key: acct, max: settings.maxFailures },
      // One address may try several accounts, but not without bound.
      { key: addr, max: settings.maxFailures * 4 },
    ],
    settings.windowSeconds,
  );
  if (wait > 0) throw new SignInThrottled(wait);
  const plausible = email && password && email.length <= MAX_EMAIL && password.length <= MAX_PASSWORD;
  const user = plausible ? await verifyCredentials(db, email, password) : null;
  if (!user) {
    if (Math.random() < 0.05) await sweepCounters(db, settings.windowSeconds);
    return null;
  }
  await clearAttempts(db, acct);
  await refundAttempt(db, addr);
  return user;
}
