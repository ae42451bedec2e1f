/**
 * Bounds on what a client may send the agent's MCP endpoint, checked before
 * any work is done on it (JSON.parse included: V8 takes 1.5 s to parse 4 MB
 * of nested brackets, so the raw bytes are scanned first, in one linear pass).
 */

/** Largest POST body read (bytes); more answers 413 without reading on. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Deepest nesting of a tool call's arguments (the envelope adds at most 4 levels: batch, message, params, arguments). */
export const MAX_ARGS_DEPTH = 32;
/** Most JSON values (containers and items) in one body, batch included. */
export const MAX_NODES = 10_000;
/** Most messages in one batch. */
export const MAX_BATCH = 100;
/** Longest method name and string id accepted. */
export const MAX_METHOD_CHARS = 256;
export const MAX_ID_CHARS = 256;
/** Largest Mcp-Session-Id and Last-Event-ID header accepted. */
export const MAX_SESSION_ID_CHARS = 1024;
export const MAX_EVENT_ID_CHARS = 1024;

const ENVELOPE_DEPTH = 4;
const OPEN_OBJ = 0x7b;
const OPEN_ARR = 0x5b;
const CLOSE_OBJ = 0x7d;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Why a raw JSON body is over the bounds (depth or value count), or null.
 * A linear scan over the bytes that skips strings; it does not validate JSON
 * (JSON.parse does that afterwards, on a body known to be cheap to parse).
 */
export function scanBody(body: Uint8Array): string | null {
  let depth = 0;
  let nodes = 1;
  let inString = false;
  const maxDepth = MAX_ARGS_DEPTH + ENVELOPE_DEPTH;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (++depth > maxDepth) return `nested deeper than ${MAX_ARGS_DEPTH} levels`;
      if (++nodes > MAX_NODES) return `more than ${MAX_NODES} values`;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) depth--;
    else if (c === COMMA && ++nodes > MAX_NODES) return `more than ${MAX_NODES} values`;
  }
  return null;
}

/** Depth of a parsed value (iterative; stops counting past `limit`). */
export function depthOf(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d + 1 > max) max = d + 1;
    if (max > limit) return max;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return max;
}
