import { describe, expect, it } from "vitest";
import { cedar, cedarReplacements, scanCedarText } from "@/lib/enforcement/cedar";

// The scanner's depth estimate must stay an upper bound of what Cedar recurses
// over: any text it accepts, of any shape, goes through every entry point
// (including the JSON round trip the compiler's confinement does) without a
// throw. Random expression trees, seeded, biased towards deep ones.

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEAVES = ["true", "1", "context.a", '"s(["', "principal", "resource", 'Tool::"x"', "context.args.x", 'ip("10.0.0.1")'];

function generator(r: () => number) {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const leaf = () => pick(LEAVES);
  // One deep operand at a random place among leaves: the text stays linear in the depth.
  const chain = (d: number, op: string) => {
    const parts = Array.from({ length: 2 + Math.floor(r() * 30) }, () => leaf());
    parts[Math.floor(r() * parts.length)] = gen(d - 1);
    return parts.join(` ${op} `);
  };
  const gen = (d: number): string => {
    if (d <= 0 || r() < 0.08) return leaf();
    switch (Math.floor(r() * 13)) {
      case 0:
        return chain(d, "&&");
      case 1:
        return chain(d, "||");
      case 2:
        return `(${gen(d - 1)})`;
      case 3:
        return `[${gen(d - 1)}, ${leaf()}]`;
      case 4:
        return `{a: ${gen(d - 1)}}`;
      case 5:
        return `(${gen(d - 1)}).a`;
      case 6:
        return r() < 0.5 ? `if ${leaf()} then ${leaf()} else ${gen(d - 1)}` : `if ${leaf()} then ${gen(d - 1)} else ${leaf()}`;
      case 7:
        return `${gen(d - 1)} == ${leaf()}`;
      case 8:
        return chain(d, "+");
      case 9:
        return `!${gen(d - 1)}`;
      case 10:
        return `${leaf()}.contains(${gen(d - 1)})`;
      case 11:
        return `context${".a".repeat(1 + Math.floor(r() * 40))} like "*(*"`;
      default:
        return `${gen(d - 1)} && context has a`;
    }
  };
  return gen;
}

describe("Cedar scanner soundness (seeded random shapes)", () => {
  it("every accepted text passes every entry point without a throw; deep ones are refused before Cedar", () => {
    const before = cedarReplacements();
    const gen = generator(rng(17));
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const text = `permit (principal, action, resource) when { ${gen(10 + (i % 60))} };`;
      if (scanCedarText(text)) {
        refused++;
        expect(cedar.checkParsePolicySet({ staticPolicies: text }).type).toBe("failure");
        continue;
      }
      accepted++;
      cedar.policySetTextToParts(text);
      cedar.checkParsePolicySet({ staticPolicies: text });
      cedar.formatPolicies({ policyText: text });
      cedar.isAuthorized({
        principal: { type: "User", id: "u" },
        action: { type: "Action", id: "call_tool" },
        resource: { type: "Tool", id: "x" },
        context: {},
        policies: { staticPolicies: text },
        entities: [],
      });
      const json = cedar.policyToJson(text);
      if (json.type === "success") {
        const confined = {
          ...json.json,
          conditions: [...json.json.conditions, { kind: "when" as const, body: { "&&": { left: { "||": { left: { Value: true }, right: { Value: true } } }, right: { Value: true } } } as never }],
        };
        const back = cedar.policyToText(confined);
        expect(back.type, text.slice(0, 200)).toBe("success");
        expect(cedar.checkParsePolicySet({ staticPolicies: { p: confined } }).type).toBe("success");
      }
      // Nothing threw inside cedar-wasm (a throw replaces the instance and is counted).
      expect(cedarReplacements(), text.slice(0, 200)).toBe(before);
    }
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(50);
  });
});
