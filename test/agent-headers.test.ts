/**
 * The 2026-07-28 request-metadata helpers of the agent (agent/protocol.ts), without a network:
 * the id read from a raw body without parsing it (agrees with JSON.parse, never throws, linear),
 * the Base64 sentinel of Mcp-Name / Mcp-Param-*, `x-mcp-header` declarations, the order of the
 * header/body checks, and the cache hints.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkStateless,
  decodeHeaderValue,
  encodeHeaderValue,
  HEADER_MISMATCH,
  INVALID_PARAMS,
  MAX_CACHE_TTL_MS,
  paramHeadersOf,
  peekId,
  privateCacheHints,
  UNSUPPORTED_PROTOCOL_VERSION,
  type McpHeaders,
} from "@/agent/protocol";

const bytes = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} };
const headers = (h: Partial<McpHeaders> = {}): McpHeaders => ({ version: "2026-07-28", method: "tools/call", name: "t", rawName: "t", params: new Map(), ...h });

describe("peekId", () => {
  it("reads the top-level id of any JSON object as JSON.parse does (strings and finite numbers), wherever the key stands", () => {
    const id = fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ maxLength: 8 }).filter((k) => k !== "id"),
          fc.jsonValue({ maxDepth: 4 }),
        ),
        id,
        fc.nat(),
        (rest, value, at) => {
          const entries = Object.entries(rest);
          entries.splice(at % (entries.length + 1), 0, ["id", value]);
          const text = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
          const expected = (JSON.parse(text) as { id: unknown }).id;
          expect(peekId(bytes(text))).toBe(Object.is(expected, -0) ? 0 : expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("never throws, and answers null for anything else (not an object, no id, an object or array id, a malformed prefix)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => void peekId(b)),
      { numRuns: 500 },
    );
    for (const t of ['[{"id":1}]', '{"jsonrpc":"2.0"}', '{"id":{"a":1}}', '{"id":[1]}', '{"method":"x" "id":1}', "", "not json", '{"params":{"id":5}}']) expect(peekId(bytes(t)), t).toBeNull();
    // The id is read before the body breaks off: a body that is not JSON still has its id.
    expect(peekId(bytes('{"jsonrpc":"2.0","id":"hf-1","method":"tools/call", garbage'))).toBe("hf-1");
  });

  it("is linear: 4 MiB of nested brackets before the id take milliseconds", () => {
    const deep = `{"params":${"[".repeat(2 * 1024 * 1024)}${"]".repeat(2 * 1024 * 1024)},"id":7}`;
    const t = performance.now();
    expect(peekId(bytes(deep))).toBe(7);
    expect(performance.now() - t).toBeLessThan(2000);
  });
});

describe("header values", () => {
  it("round-trips any string through the Base64 sentinel, and refuses a malformed sentinel", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (v) => void expect(decodeHeaderValue(encodeHeaderValue(v))).toBe(v)));
    expect(encodeHeaderValue("us-west1")).toBe("us-west1");
    expect(encodeHeaderValue("Hello, 世界")).toBe("=?base64?SGVsbG8sIOS4lueVjA==?=");
    expect(decodeHeaderValue("=?base64?SGVsbG8sIOS4lueVjA?=")).toBeUndefined();
    expect(decodeHeaderValue("=?base64?/w==?=")).toBeUndefined();
  });

  it("finds x-mcp-header declarations reachable through properties only, and refuses invalid ones", () => {
    expect(
      paramHeadersOf({ type: "object", properties: { region: { type: "string", "x-mcp-header": "Region" }, nested: { type: "object", properties: { n: { type: "integer", "x-mcp-header": "N" } } } } }),
    ).toEqual([
      { path: ["nested", "n"], header: "N", type: "integer" },
      { path: ["region"], header: "Region", type: "string" },
    ]);
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "object", "x-mcp-header": "A" } } })).toBeNull();
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "string", "x-mcp-header": "A B" } } })).toBeNull();
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "string", "x-mcp-header": "X" }, b: { type: "string", "x-mcp-header": "x" } } })).toBeNull();
    // Under items or anyOf: not reachable, not mirrored (the agent does not expect a header for it).
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "array", items: { type: "string", "x-mcp-header": "A" } } } })).toEqual([]);
  });
});

describe("checkStateless", () => {
  const call = (params: Record<string, unknown>) => ({ id: 1, method: "tools/call", params: { name: "t", _meta: META, ...params } });
  it("checks in the SDK v2 server's order: envelope, version and method cross-checks, revision, presence, name, parameters", () => {
    expect(checkStateless({ id: 1, method: "tools/call", params: { name: "t" } }, headers(), null)?.code).toBe(INVALID_PARAMS);
    expect(checkStateless(call({ _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } }), headers(), null)?.code).toBe(INVALID_PARAMS);
    expect(checkStateless(call({}), headers({ version: "2025-11-25" }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({ _meta: { ...META, "io.modelcontextprotocol/protocolVersion": "2027-01-01" } }), headers({ version: "2027-01-01" }), null)?.code).toBe(UNSUPPORTED_PROTOCOL_VERSION);
    expect(checkStateless(call({}), headers({ method: "tools/list" }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({}), headers({ version: null }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({}), headers({ method: null }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({}), headers({ name: null, rawName: null }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({}), headers({ name: "u" }), null)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({}), headers(), null)).toBeNull();
    const p = paramHeadersOf({ properties: { n: { type: "integer", "x-mcp-header": "N" } } });
    expect(checkStateless(call({ arguments: { n: 42 } }), headers({ params: new Map([["n", "42.0"]]) }), p)).toBeNull();
    expect(checkStateless(call({ arguments: { n: 42 } }), headers({ params: new Map([["n", "43"]]) }), p)?.code).toBe(HEADER_MISMATCH);
    expect(checkStateless(call({ arguments: { n: 42 } }), headers(), p)?.code).toBe(HEADER_MISMATCH);
    // A null or absent value expects no header.
    expect(checkStateless(call({ arguments: { n: null } }), headers(), p)).toBeNull();
  });
});

describe("privateCacheHints", () => {
  it("is always private, never longer than the bound, never negative; adds hints only when asked", () => {
    expect(privateCacheHints({ ttlMs: 3_600_000, cacheScope: "public" }, MAX_CACHE_TTL_MS, false)).toEqual({ ttlMs: MAX_CACHE_TTL_MS, cacheScope: "private" });
    expect(privateCacheHints({ ttlMs: 5_000, cacheScope: "public" }, 1_000, false)).toEqual({ ttlMs: 1_000, cacheScope: "private" });
    expect(privateCacheHints({ ttlMs: -5 }, MAX_CACHE_TTL_MS, false)).toEqual({ ttlMs: 0, cacheScope: "private" });
    expect(privateCacheHints({ ttlMs: 5_000 }, -10, false)).toEqual({ ttlMs: 0, cacheScope: "private" });
    expect(privateCacheHints({ tools: [] }, MAX_CACHE_TTL_MS, false)).toEqual({ tools: [] });
    expect(privateCacheHints({ tools: [] }, MAX_CACHE_TTL_MS, true)).toEqual({ tools: [], ttlMs: 0, cacheScope: "private" });
  });
});
