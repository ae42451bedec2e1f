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
