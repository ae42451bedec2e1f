import "server-only";
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { Kek } from "@/lib/bundles/signing";

/*
 * The connect flow's `state` and PKCE verifier, derived from the active KEK
 * (HKDF, labels of their own) so nothing secret about a flow is stored:
 *
 *   state    = <requestId>.<nonce>.<exp>.<mac>
 *   mac      = HMAC-SHA-256(K_state, "<requestId>.<nonce>.<exp>.<userId>")
 *   verifier = base64url(HMAC-SHA-256(K_pkce, "<requestId>.<nonce>"))   (RFC 7636, 43 chars)
 *
 * The MAC binds the state to the dashboard user who started the flow (never
 * named in the state itself), so a state carried to another user's browser
 * fails; the request row holds SHA-256(nonce) and is consumed once, so a
 * state is good once; `exp` bounds it to FLOW_TTL_MS.
 */

/** How long a started flow may take (authorize, log in, consent, come back). */
export const FLOW_TTL_MS = 10 * 60_000;
const MAX_STATE_CHARS = 300;

function derived(kek: Kek, label: string): Buffer {
  return Buffer.from(hkdfSync("sha256", kek.key, Buffer.alloc(0), `mandate-connect-${label}`, 32));
}

const b64url = (b: Buffer) => b.toString("base64url");

export const nonceHash = (nonce: string) => createHash("sha256").update(nonce).digest("hex");

export interface IssuedState {
  state: string;
  nonce: string;
  verifier: string;
  expiresAt: Date;
}

/** A fresh state and verifier for a flow of `requestId` started by dashboard user `userId`. */
export function issueState(kek: Kek, requestId: string, userId: string, now = Date.now()): IssuedState {
  const nonce = b64url(randomBytes(24));
  const exp = Math.floor((now + FLOW_TTL_MS) / 1000);
  const mac = b64url(createHmac("sha256", derived(kek, "state")).update(`${requestId}.${nonce}.${exp}.${userId}`).digest());
  return { state: `${requestId}.${nonce}.${exp}.${mac}`, nonce, verifier: pkceVerifier(kek, requestId, nonce), expiresAt: new Date(exp * 1000) };
}

/** The PKCE verifier of a flow (recomputed at the callback, never stored). */
export function pkceVerifier(kek: Kek, requestId: string, nonce: string): string {
  return b64url(createHmac("sha256", derived(kek, "pkce")).update(`${requestId}.${nonce}`).digest());
}

/**
 * Checks a state returned to the callback for the signed-in user `userId`:
 * its shape, its MAC (constant time) and its expiry. Returns the request id
 * and nonce, or why it is refused (never which part of the MAC failed).
 */
export function checkState(kek: Kek, state: string, userId: string, now = Date.now()): { requestId: string; nonce: string } | { problem: string } {
  if (state.length > MAX_STATE_CHARS) return { problem: "the state is malformed" };
  const parts = state.split(".");
  if (parts.length !== 4) return { problem: "the state is malformed" };
  const [requestId, nonce, expRaw, mac] = parts as [string, string, string, string];
  if (!/^cnr_[0-9a-f]{32}$/.test(requestId) || !/^[\w-]{32}$/.test(nonce) || !/^\d{1,12}$/.test(expRaw) || !/^[\w-]{43}$/.test(mac)) return { problem: "the state is malformed" };
  const want = createHmac("sha256", derived(kek, "state")).update(`${requestId}.${nonce}.${expRaw}.${userId}`).digest();
  const got = Buffer.from(mac, "base64url");
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { problem: "the state was not issued to you (sign in as the user who started the connection)" };
  if (Number(expRaw) * 1000 <= now) return { problem: "the connection attempt expired; start again" };
  return { requestId, nonce };
}
