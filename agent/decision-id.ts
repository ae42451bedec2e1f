import { randomFillSync } from "node:crypto";
import { V7Generator } from "uuidv7";

/** 32-bit words of randomness drawn at once (1 KiB). */
const WORDS = 256;
const words = new Uint32Array(WORDS);
let next = WORDS;

/**
 * The ids of the agent's decision records: UUIDv7 from the `uuidv7`
 * library's generator (same layout, same monotonic order within the
 * process), its random bits taken from a 1 KiB buffer that
 * `randomFillSync` refills when it is used up. The library's default
 * source refills 32 bytes through WebCrypto's `getRandomValues` every few
 * ids: ~13 µs of a gateway call's CPU in a profile (issue 12, tenth round).
 * The bits come from the same CSPRNG either way; decision ids are unique
 * and unguessable, not secret.
 */
const generator = new V7Generator({
  nextUint32: () => {
    if (next === WORDS) {
      randomFillSync(words);
      next = 0;
    }
    return words[next++]!;
  },
});

export function newDecisionId(): string {
  return generator.generate().toString();
}
