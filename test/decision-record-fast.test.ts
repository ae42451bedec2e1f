/**
 * The fast path of the decision line (fastDecisionLine in
 * lib/enforcement/decision-record.ts) against the zod schema it stands in
 * for: whenever it accepts a line, zod accepts it with the same value; it
 * never accepts a line zod refuses; and it does accept the common line (else
 * ingest would gain nothing).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { uuidv7 } from "uuidv7";
import { argsJsonText, DECISION_LIMITS, decisionLine, fastDecisionLine, normalizeDecisionRecord, toLine } from "@/lib/enforcement/decision-record";
import { hostileJson } from "./hostile-json";

const common = () => ({
  id: uuidv7(),
  bundleRevision: 3,
  tenantId: "ten_a",
  serverId: "srv_a",
  method: "tools/call",
  tool: "list_tickets",
  user: "ana@example.com",
  client: "claude",
  scopes: ["tickets:read"],
  outcome: "allow",
  reason: "allowed by scope tickets:read",
  determining: ["scope:srv_a:tickets:read"],
  args: { status: "open", nested: { a: [1, 2, { b: "x" }] } },
  context: { groups: ["eng"], traceId: "0af7651916cd43dd8448eb211c80319c", token: { iss: "https://idp.example.com", iat: 1, exp: 2 }, ip: "10.0.0.1", masked: ["a.b"], repeated: 2 },
  latencyUs: 150,
});

/** Fast accepts ⇒ zod accepts with the same value (through JSON, as ingest parses it). */
function agrees(line: unknown) {
  const json = JSON.parse(JSON.stringify(line)) as unknown;
  const fast = fastDecisionLine(json);
  const z = decisionLine.safeParse(JSON.parse(JSON.stringify(line)));
  if (fast !== null) {
    expect(z.success, JSON.stringify(line).slice(0, 300)).toBe(true);
    expect(fast).toEqual(z.data);
    if (fast.args) expect(argsJsonText.get(fast.args)).toBe(JSON.stringify(fast.args));
  }
  return { fast, zodOk: z.success };
}

const hostileString = fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.string({ maxLength: 20 }), fc.constant("\u0000"), fc.constant("\ud800x"), fc.constant("\udc00"), fc.constant("😀"));
const hostile = hostileJson(hostileString, 4);
const keys = Object.keys(common()) as (keyof ReturnType<typeof common>)[];

describe("fast decision line", () => {
  it("accepts the common line with zod's value, defaults included", () => {
    const { fast } = agrees(common());
    expect(fast).not.toBeNull();
    const minimal = { id: uuidv7(), serverId: "srv_a", method: "initialize", outcome: "deny" };
    const m = agrees(minimal);
    expect(m.fast).toEqual({
      ...minimal,
      bundleRevision: null,
      tenantId: null,
      tool: null,
      user: null,
      client: null,
      scopes: [],
      reason: "",
      determining: [],
      args: null,
      context: null,
      latencyUs: null,
    });
  });

  it("normalized records (what agents write) pass the fast path", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...keys), hostile), (input) => {
        const line = toLine(normalizeDecisionRecord({ ...input, id: uuidv7() }));
        const { fast, zodOk } = agrees(line);
        expect(zodOk).toBe(true);
        // Only a NUL, a surrogate or an escape in the text sends a normalized line to zod.
        // eslint-disable-next-line no-control-regex -- NUL is what it looks for
        if (!/[\u0000\ud800-\udfff]|\\u|__proto__/.test(JSON.stringify(line))) expect(fast).not.toBeNull();
      }),
      { numRuns: 400 },
    );
  });

  it("never accepts what zod refuses: one field replaced by anything", () => {
    fc.assert(
      fc.property(fc.constantFrom(...keys, "extra" as never), hostile, (key, value) => {
        agrees({ ...common(), [key]: value });
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.constantFrom("groups", "traceId", "actors", "token", "ip", "masked", "repeated", "other"), hostile, (key, value) => {
        agrees({ ...common(), context: { ...common().context, [key]: value } });
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses each bound's first value past it, and accepts the bound itself", () => {
    const at = (n: number) => "x".repeat(n);
    const cases: [Record<string, unknown>, boolean][] = [
      [{ tool: at(DECISION_LIMITS.tool) }, true],
      [{ tool: at(DECISION_LIMITS.tool + 1) }, false],
      [{ reason: at(DECISION_LIMITS.reason + 1) }, false],
      [{ scopes: Array(DECISION_LIMITS.scopes).fill("s") }, true],
      [{ scopes: Array(DECISION_LIMITS.scopes + 1).fill("s") }, false],
      [{ user: "a\u0000b" }, false],
      [{ user: "a\ud800" }, false],
      [{ latencyUs: DECISION_LIMITS.latencyUs + 1 }, false],
      [{ latencyUs: 1.5 }, false],
      [{ bundleRevision: -1 }, false],
      [{ bundleRevision: 2 ** 53 }, false],
      [{ id: "0190a3c2-1111-4111-8111-111111111111" }, false],
      [{ outcome: "maybe" }, false],
      [{ args: [1] }, false],
      [{ args: { s: "\u0000" } }, false],
      [{ args: { s: "\ud800" } }, false],
      [{ args: { s: at(DECISION_LIMITS.argsBytes) } }, false],
      [{ args: { s: at(DECISION_LIMITS.argsBytes - 20) } }, true],
      [{ context: { token: { iss: "i", iat: 1, exp: 2, extra: 1 } } }, false],
      [{ context: { repeated: 0 } }, false],
      [{ context: { traceId: "0".repeat(32) } }, false],
    ];
    const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
    cases.push([{ args: deep(DECISION_LIMITS.argsDepth) as Record<string, unknown> }, true]);
    cases.push([{ args: deep(DECISION_LIMITS.argsDepth + 1) as Record<string, unknown> }, false]);
    for (const [patch, ok] of cases) {
      const { fast, zodOk } = agrees({ ...common(), ...patch });
      expect(zodOk, JSON.stringify(patch).slice(0, 100)).toBe(ok);
      expect(fast !== null, JSON.stringify(patch).slice(0, 100)).toBe(ok);
    }
  });
});
