import { createHash, hash } from "node:crypto";
import type { BundleServer } from "@/lib/enforcement/bundle";
import type { Principal } from "@/lib/enforcement/token";

export type { Principal };

/**
 * What the agent needs of a token validator. lib/enforcement/token.ts
 * (TokenValidator) is the real one; tests may plug in another.
 */
export type TokenCheck = { ok: true; principal: Principal } | { ok: false; error: "invalid_token"; description: string };

export interface TokenValidatorLike {
  validate(token: string, server: BundleServer): Promise<TokenCheck>;
}

/** Most verified tokens remembered at once (per installed bundle); the oldest is forgotten first. */
export const MAX_VERIFIED_TOKENS = 10_000;
/** A verified token is re-verified (signature, keys, claims) at least this often, even before its exp. */
export const VERIFIED_TOKEN_TTL_MS = 60_000;

/** `MANDATE_CPU_FAST=0`: the token's hash through a Hash object, the way before issue 12's eighth round (for bench/gateway.ts). */
const CPU_FAST = process.env.MANDATE_CPU_FAST !== "0";

interface Verified {
  principal: Principal;
  until: number;
}

/**
 * Remembers tokens that verified, keyed by SHA-256 of the token and the
 * server, so a session's later calls skip the signature check and claim
 * mapping. Only successes are kept, until the token's exp or
 * VERIFIED_TOKEN_TTL_MS (whichever is first), and the whole cache is
 * dropped whenever the installed bundle changes (trust, tenants, keys). It
 * replaces nothing else: revocation and every policy check still run on
 * every request (decide()).
 */
export class VerifiedTokens {
  private bundle: object | null = null;
  private readonly entries = new Map<string, Verified>();

  constructor(
    private readonly validator: TokenValidatorLike,
    private readonly now: () => number = Date.now,
  ) {}

  async validate(token: string, server: BundleServer, bundle: object): Promise<TokenCheck> {
    if (bundle !== this.bundle) {
      this.entries.clear();
      this.bundle = bundle;
    }
    // One-shot hash (no Hash object per request); the raw token is never a key.
    const key = `${server.id}\u0000${CPU_FAST ? hash("sha256", token, "base64url") : createHash("sha256").update(token).digest("base64url")}`;
    const hit = this.entries.get(key);
    if (hit) {
      if (this.now() < hit.until) return { ok: true, principal: hit.principal };
      this.entries.delete(key);
    }
    const check = await this.validator.validate(token, server);
    // A bundle installed while this token was being checked: not remembered under the new one.
    if (check.ok && bundle === this.bundle) {
      const until = Math.min(check.principal.exp * 1000, this.now() + VERIFIED_TOKEN_TTL_MS);
      if (until > this.now()) {
        if (this.entries.size >= MAX_VERIFIED_TOKENS) this.entries.delete(this.entries.keys().next().value!);
        const p = check.principal;
        this.entries.set(key, {
          principal: Object.freeze({ ...p, scopes: Object.freeze([...p.scopes]), groups: Object.freeze([...p.groups]), actors: Object.freeze([...p.actors]) }) as Principal,
          until,
        });
      }
    }
    return check;
  }

  /** How many tokens are remembered (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }
}
