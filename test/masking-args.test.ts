import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { BundleMaskingRule } from "@/lib/enforcement/bundle";
import { MASKED, maskArgs, maskHash, maskPathError } from "@/lib/enforcement/masking";

const S = "srv_1";
const rule = (paths: string[], mode: "hide" | "hash" = "hide", tool = "pay", serverId = S): BundleMaskingRule => ({ serverId, tool, paths, mode });

describe("maskArgs", () => {
  it("hides a nested key and reports the concrete path", () => {
    const args = { card: { number: "4111111111111111", cvc: "123" }, amount: 10 };
    const r = maskArgs(args, [rule(["card.number"])], S, "pay");
    expect(r.args).toEqual({ card: { number: MASKED, cvc: "123" }, amount: 10 });
    expect(r.masked).toEqual(["card.number"]);
  });

  it("never mutates its input and returns a deep copy", () => {
    const args = { card: { number: "4111" }, list: [{ a: 1 }] };
    const before = structuredClone(args);
    const r = maskArgs(args, [rule(["card.number"])], S, "pay");
    expect(args).toEqual(before);
    expect(r.args).not.toBe(args);
    expect((r.args as { list: unknown[] }).list).not.toBe(args.list);
    const untouched = maskArgs(args, [], S, "pay");
    expect(untouched.args).toEqual(args);
    expect(untouched.args).not.toBe(args);
  });

  it("expands * over array items", () => {
    const args = { items: [{ ssn: "1", n: 1 }, { n: 2 }, { ssn: "3" }] };
    const r = maskArgs(args, [rule(["items.*.ssn"])], S, "pay");
    expect(r.args).toEqual({ items: [{ ssn: MASKED, n: 1 }, { n: 2 }, { ssn: MASKED }] });
    expect(r.masked.sort()).toEqual(["items.0.ssn", "items.2.ssn"]);
  });

  it("expands * over object keys, and a bare * hides every top-level value", () => {
    const r = maskArgs({ a: { x: 1, y: { z: 2 } } }, [rule(["a.*"])], S, "pay");
    expect(r.args).toEqual({ a: { x: MASKED, y: MASKED } });
    const all = maskArgs({ a: 1, b: { c: 2 }, d: [1] }, [rule(["*"])], S, "pay");
    expect(all.args).toEqual({ a: MASKED, b: MASKED, d: MASKED });
    expect(all.masked.sort()).toEqual(["a", "b", "d"]);
  });

  it("addresses an array item by index", () => {
    const r = maskArgs({ items: ["a", "b"] }, [rule(["items.1", "items.5"])], S, "pay");
    expect(r.args).toEqual({ items: ["a", MASKED] });
    expect(r.masked).toEqual(["items.1"]);
  });

  it("leaves arguments alone when nothing matches (path, tool or server)", () => {
    const args = { card: { number: "4111" } };
    expect(maskArgs(args, [rule(["card.cvc", "card.number.x", "nope"])], S, "pay")).toEqual({ args, masked: [] });
    expect(maskArgs(args, [rule(["card.number"], "hide", "other")], S, "pay")).toEqual({ args, masked: [] });
    expect(maskArgs(args, [rule(["card.number"], "hide", "pay", "srv_2")], S, "pay")).toEqual({ args, masked: [] });
  });

  it("applies tool '*' rules to every tool of the server", () => {
    const r = maskArgs({ token: "t" }, [rule(["token"], "hide", "*")], S, "anything");
    expect(r.args).toEqual({ token: MASKED });
  });

  it("hashes with the documented construction", () => {
    const value = { b: 2, a: "x" };
    const r = maskArgs({ secret: value }, [rule(["secret"], "hash")], S, "pay");
    const expected = "sha256:" + createHash("sha256").update(`${S}/pay/secret\u0000{"a":"x","b":2}`).digest("hex").slice(0, 32);
    expect(r.args).toEqual({ secret: expected });
    expect(maskHash(S, "pay", "secret", value)).toBe(expected);
    expect(r.masked).toEqual(["secret"]);
  });

  it("hash is deterministic, independent of key order, and keyed by server, tool and path", () => {
    const h = (v: unknown, srv = S, tool = "pay", path = "x") => maskHash(srv, tool, path, v);
    expect(h({ a: 1, b: 2 })).toBe(h({ b: 2, a: 1 }));
    expect(h("v")).not.toBe(h("v", "srv_2"));
    expect(h("v")).not.toBe(h("v", S, "other"));
    expect(h("v")).not.toBe(h("v", S, "pay", "y"));
    expect(h("v")).toMatch(/^sha256:[0-9a-f]{32}$/);
  });

  it("hide wins over hash on the same path, whatever the rule order", () => {
    for (const rules of [
      [rule(["x"], "hash"), rule(["x"], "hide")],
      [rule(["x"], "hide"), rule(["x"], "hash")],
    ]) {
      expect(maskArgs({ x: "secret" }, rules, S, "pay").args).toEqual({ x: MASKED });
    }
  });

  it("a masked parent makes rules below it moot", () => {
    const r = maskArgs({ card: { number: "4111", cvc: "1" } }, [rule(["card.number"], "hash"), rule(["card"])], S, "pay");
    expect(r.args).toEqual({ card: MASKED });
    expect(r.masked).toEqual(["card"]);
  });

  it("mixes modes on different paths", () => {
    const r = maskArgs({ a: "1", b: "2" }, [rule(["a"], "hash"), rule(["b"], "hide")], S, "pay");
    expect((r.args as { a: string }).a).toMatch(/^sha256:/);
    expect((r.args as { b: string }).b).toBe(MASKED);
    expect(r.masked.sort()).toEqual(["a", "b"]);
  });

  it("handles null, undefined and non-object arguments", () => {
    expect(maskArgs(null, [rule(["x"])], S, "pay")).toEqual({ args: null, masked: [] });
    expect(maskArgs(undefined, [rule(["x"])], S, "pay")).toEqual({ args: null, masked: [] });
    // Not an object: dropped whole when a rule applies (fail closed), kept otherwise.
    expect(maskArgs(["a"] as unknown as Record<string, unknown>, [rule(["0"])], S, "pay")).toEqual({ args: null, masked: ["*"] });
    expect(maskArgs("str" as unknown as Record<string, unknown>, [], S, "pay")).toEqual({ args: "str", masked: [] });
  });

  it("masks null and falsy values too (presence is what the rule targets)", () => {
    const r = maskArgs({ a: null, b: 0, c: "" }, [rule(["a", "b", "c"])], S, "pay");
    expect(r.args).toEqual({ a: MASKED, b: MASKED, c: MASKED });
  });

  it("skips malformed paths instead of guessing", () => {
    const r = maskArgs({ a: { b: 1 } }, [rule(["a..b", "", "a.b*"])], S, "pay");
    expect(r.masked).toEqual([]);
  });
});

describe("maskPathError", () => {
  it.each([
    ["card.number", null],
    ["items.*.ssn", null],
    ["*", null],
    ["items.0", null],
  ])("accepts %s", (p, e) => expect(maskPathError(p)).toBe(e));

  it.each([
    ["", /empty/],
    ["a..b", /empty segment/],
    [".a", /empty segment/],
    ["a.", /empty segment/],
    ["a.b*", /whole segment/],
    ["a b", /spaces/],
    ["x".repeat(201), /at most 200/],
  ])("refuses %j", (p, e) => expect(maskPathError(p)).toMatch(e));
});
