// The one place cedar-wasm is loaded. The `/nodejs` entry works on Node 20
// (the root entry imports a .wasm file Node cannot load).
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";

export { cedar };
export type { DetailedError, SchemaJson, PolicyJson } from "@cedar-policy/cedar-wasm/nodejs";

/** Turns a byte offset in `text` into a 1-based line and column. */
export function lineCol(text: string, offset: number): { line: number; column: number } {
  const before = Buffer.from(text).subarray(0, offset).toString("utf8");
  const lines = before.split("\n");
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}
