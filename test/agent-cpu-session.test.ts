/**
 * The session binder's memo of MACs (agent/session.ts, issue 12's eighth
 * round): a remembered MAC answers exactly as the HMAC does (same ids out,
 * the same ids refused, hit or miss), only ids the binder wrapped or verified
 * are remembered, and the memo is bounded.
 */
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_REMEMBERED_MACS, SessionBinder } from "@/agent/session";

const key = randomBytes(32);
const who = "https://idp\u0000ten_a\u0000ana\u0000claude";

/** The same id with one character of its MAC changed. */
const flip = (id: string, at: number) => {
  const dot = id.lastIndexOf(".");
  const i = dot + 1 + (at % (id.length - dot - 1));
  return id.slice(0, i) + (id[i] === "A" ? "B" : "A") + id.slice(i + 1);
};

describe("SessionBinder MAC memo", () => {
  it("answers as a binder without a memo would, for remembered and unknown ids alike", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[\x21-\x7e]{1,40}$/), fc.nat(), (upstream, at) => {
        const b = new SessionBinder(key);
        const fresh = () => new SessionBinder(key);
        const id = b.wrap("srv_a", who, upstream);
        // Another replica (or a restart) with the same key: same id, verifies it.
        expect(fresh().wrap("srv_a", who, upstream)).toBe(id);
        expect(fresh().unwrap("srv_a", who, id)).toBe(upstream);
        // Twice from the memo.
        expect(b.unwrap("srv_a", who, id)).toBe(upstream);
        expect(b.unwrap("srv_a", who, id)).toBe(upstream);
        expect(b.wrap("srv_a", who, upstream)).toBe(id);
        // A remembered id with one MAC character changed, cut short, or lengthened: refused.
        expect(b.unwrap("srv_a", who, flip(id, at))).toBeNull();
        expect(b.unwrap("srv_a", who, id.slice(0, -1))).toBeNull();
        expect(b.unwrap("srv_a", who, `${id}A`)).toBeNull();
        // Another caller or another server presenting it: refused.
        expect(b.unwrap("srv_b", who, id)).toBeNull();
        expect(b.unwrap("srv_a", `${who}x`, id)).toBeNull();
        // The MAC of one id on another id: refused.
        expect(b.unwrap("srv_a", who, `${upstream}x${id.slice(id.lastIndexOf("."))}`)).toBeNull();
      }),
      { numRuns: 200 },
    );
  });

  it("remembers only ids it wrapped or verified, never a refused one, and verifies a known id from another replica once", () => {
    const b = new SessionBinder(key);
    const other = new SessionBinder(key).wrap("srv_a", who, "from-elsewhere");
    expect(b.remembered).toBe(0);
    for (let i = 0; i < 100; i++) expect(b.unwrap("srv_a", who, `made-up-${i}.${"A".repeat(43)}`)).toBeNull();
    expect(b.unwrap("srv_a", who, flip(other, 3))).toBeNull();
    expect(b.remembered).toBe(0);
    expect(b.unwrap("srv_a", who, other)).toBe("from-elsewhere");
    expect(b.remembered).toBe(1);
    b.wrap("srv_a", who, "mine");
    expect(b.remembered).toBe(2);
  });

  it("is bounded: past MAX_REMEMBERED_MACS the oldest is forgotten, and a forgotten id still verifies", () => {
    const b = new SessionBinder(key);
    const first = b.wrap("srv_a", who, "u0");
    for (let i = 1; i <= MAX_REMEMBERED_MACS + 50; i++) b.wrap("srv_a", who, `u${i}`);
    expect(b.remembered).toBe(MAX_REMEMBERED_MACS);
    expect(b.unwrap("srv_a", who, first)).toBe("u0");
    expect(b.remembered).toBe(MAX_REMEMBERED_MACS);
  });
});
