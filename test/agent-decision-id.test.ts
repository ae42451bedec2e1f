/**
 * The agent's decision ids (agent/decision-id.ts): UUIDv7 whose random bits
 * come from a buffer refilled in bulk. Each id is a version-7, RFC 9562
 * variant UUID, ordered by creation, stamped with the time it was made, and
 * its random bits keep coming fresh across many refills of the buffer.
 */
import { describe, expect, it } from "vitest";
import { newDecisionId } from "@/agent/decision-id";
import { uuidv7Time } from "@/lib/decisions/ingest";

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("decision ids", () => {
  it("are UUIDv7, strictly increasing, stamped now, with fresh random bits across buffer refills", () => {
    const before = Date.now();
    // Each id takes one to three 32-bit words: 20,000 ids refill the 256-word buffer well over a hundred times.
    const ids = Array.from({ length: 20_000 }, () => newDecisionId());
    const after = Date.now();
    for (const id of ids) expect(id).toMatch(V7);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    for (const id of [ids[0]!, ids.at(-1)!]) {
      expect(uuidv7Time(id)).toBeGreaterThanOrEqual(before);
      expect(uuidv7Time(id)).toBeLessThanOrEqual(after);
    }
    // The last 32 bits are one random word per id: repeats among 20,000 draws of 2^32 are rare (~0.05 expected).
    const tails = new Set(ids.map((id) => id.slice(-8)));
    expect(tails.size).toBeGreaterThan(ids.length - 5);
  });
});
