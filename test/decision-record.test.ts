/**
 * The decision record contract (lib/enforcement/decision-record.ts): whatever
 * a client or a buggy caller puts into a record, the normalized record passes
 * the schema ingest validates with, so the agent never writes a line the
 * control plane refuses (issue 10.2).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { uuidv7 } from "uuidv7";
import { DECISION_LIMITS, decisionLine, decisionRecord, normalizeDecisionRecord, toLine } from "@/lib/enforcement/decision-record";
import { hostileJson } from "./hostile-json";

// Any JSON-like value, including strings with NUL and unpaired surrogates (fc.string draws from every UTF-16 unit).
const hostileString = fc.oneof(fc.string({ unit: "binary", maxLength: 600 }), fc.string({ unit: "grapheme", maxLength: 300 }), fc.constant("\u0000"), fc.constant("\ud800x"));
const hostile = hostileJson(hostileString, 5);

describe("decision record", () => {
  it("every normalized record passes the record schema, and its wire line the ingest schema", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            time: hostile,
            agentId: hostile,
            bundleRevision: hostile,
            tenantId: hostile,
            serverId: hostile,
            method: hostile,
            tool: hostile,
            user: hostile,
            client: hostile,
            scopes: hostile,
            outcome: hostile,
            determining: hostile,
            reason: hostile,
            latencyUs: hostile,
            args: hostile,
            context: fc.oneof(
              hostile,
              fc.record({ groups: hostile, actors: hostile, token: fc.oneof(hostile, fc.record({ iss: hostile, iat: hostile, exp: hostile })), ip: hostile, masked: hostile }, { requiredKeys: [] }),
            ),
            extra: hostile,
          },
          { requiredKeys: [] },
        ),
        (input) => {
          const rec = normalizeDecisionRecord({ ...input, id: uuidv7() });
          const r = decisionRecord.safeParse(JSON.parse(JSON.stringify(rec)));
          if (!r.success) throw new Error(JSON.stringify(r.error.issues.slice(0, 3)));
          expect(decisionLine.safeParse(JSON.parse(JSON.stringify(toLine(rec)))).success).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("clamps with a visible mark, keeps text forms, never throws", () => {
    const rec = normalizeDecisionRecord({ id: uuidv7(), method: 42, tool: ["x"], reason: "r".repeat(1000), determining: Array.from({ length: 300 }, () => "p".repeat(300)) });
    expect(rec.method).toBe("42");
    expect(rec.tool).toBe("(invalid)");
    expect(rec.reason).toHaveLength(DECISION_LIMITS.reason);
    expect(rec.reason.endsWith("…")).toBe(true);
    expect(rec.determining).toHaveLength(DECISION_LIMITS.determining);
    expect(rec.determining[0]).toHaveLength(DECISION_LIMITS.determiningItem);
    expect(rec.outcome).toBe("error");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(normalizeDecisionRecord({ id: uuidv7(), args: cyclic, outcome: "deny" })).toMatchObject({ args: null, outcome: "deny", context: { masked: ["args-truncated"] } });
    expect(normalizeDecisionRecord(null).method).toBe("(invalid)");
    // A "__proto__" argument stays an argument.
    const args = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    expect(JSON.stringify(normalizeDecisionRecord({ id: uuidv7(), args }).args)).toBe('{"__proto__":{"x":1}}');
  });
});
