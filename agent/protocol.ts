/**
 * The two eras of MCP the agent speaks, and the 2026-07-28 request metadata:
 *
 * - handshake era (2024-11-05 … 2025-11-25): `initialize`, `Mcp-Session-Id`,
 *   GET streams; the protocol version is negotiated once per session.
 * - stateless era (2026-07-28): no session; every request carries its
 *   protocol version and client capabilities in `params._meta`, mirrored in
 *   the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers (and tool
 *   parameters annotated `x-mcp-header` in `Mcp-Param-{Name}`).
 *
 * Classification is body-primary, as the SDK v2 server does it
 * (`classifyInboundRequest`): a body whose `_meta` carries
 * `io.modelcontextprotocol/protocolVersion` is a stateless request; the
 * header is a cross-check. Pure functions, no I/O.
 */
import type { IncomingMessage } from "node:http";

/** Stateless-era revisions the agent serves. */
export const MODERN_VERSIONS: readonly string[] = ["2026-07-28"];
/** Handshake-era revisions the agent carries (negotiated by `initialize` between client and upstream). */
export const LEGACY_VERSIONS: readonly string[] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
export const SUPPORTED_VERSIONS: readonly string[] = [...MODERN_VERSIONS, ...LEGACY_VERSIONS];
/** The first stateless revision: revisions are ISO dates, so a string comparison orders them. */
export const FIRST_MODERN_VERSION = "2026-07-28";
export const isModernVersion = (v: string): boolean => v >= FIRST_MODERN_VERSION;

export const META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion";
export const META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities";

/** JSON-RPC codes of 2026-07-28 (basic/index, "Error Codes"). */
export const HEADER_MISMATCH = -32020;
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;
export const INVALID_PARAMS = -32602;
export const METHOD_NOT_FOUND = -32601;

/** Request methods of the handshake era that 2026-07-28 removed: a stateless request for one is "Method not found" (HTTP 404). */
export const REMOVED_IN_STATELESS: ReadonlySet<string> = new Set(["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"]);

/** Longest `Mcp-Method` accepted (as a JSON-RPC method). */
export const MAX_METHOD_HEADER_CHARS = 256;
/** Longest `Mcp-Name` accepted, encoded (a resource URI; all headers together stay within 16 KiB). */
export const MAX_NAME_HEADER_CHARS = 4096;
/** Most `Mcp-Param-*` headers on one request, and the longest value of one. */
export const MAX_PARAM_HEADERS = 32;
export const MAX_PARAM_HEADER_CHARS = 1024;
/** Longest time (ms) a client may treat a list the agent filtered as fresh (`ttlMs`), whatever the upstream says. */
export const MAX_CACHE_TTL_MS = 60_000;

/** The 2026-07-28 request headers of one HTTP request, read and bounded before the body. */
export interface McpHeaders {
  /** `MCP-Protocol-Version`, when present. */
  version: string | null;
  /** `Mcp-Method`, when present. */
  method: string | null;
  /** `Mcp-Name`, decoded (Base64 sentinel), when present. */
  name: string | null;
  /** `Mcp-Name` as sent (forwarded unchanged). */
  rawName: string | null;
  /** `Mcp-Param-{Name}` headers, keyed by lower-case `{name}`: the value as sent. */
  params: Map<string, string>;
}

/** RFC 9110 field value: visible ASCII, space and tab. */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;
const SENTINEL_PREFIX = "=?base64?";
const SENTINEL_SUFFIX = "?=";
const BASE64_CANONICAL = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strips RFC 9110 optional whitespace around a field value. */
const ows = (v: string) => v.replace(/^[\t ]+|[\t ]+$/g, "");

/**
 * Decodes a `Mcp-Name` or `Mcp-Param-*` value: the `=?base64?…?=` sentinel
 * (canonical Base64 of UTF-8) or the value as is; undefined when the sentinel
 * is malformed (the spec requires such values to be refused).
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX) && value.length >= SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length)) return value;
  const b64 = value.slice(SENTINEL_PREFIX.length, value.length - SENTINEL_SUFFIX.length);
  if (!BASE64_CANONICAL.test(b64)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(b64, "base64"));
  } catch {
    return undefined;
  }
}

/** Encodes a value for a header as the spec's clients do (plain when safe, else the Base64 sentinel). */
export function encodeHeaderValue(value: string): string {
  const plain = value.length > 0 && value === value.trim() && /^[\t\x20-\x7e]*$/.test(value) && !(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX));
  return plain ? value : `${SENTINEL_PREFIX}${Buffer.from(value, "utf8").toString("base64")}${SENTINEL_SUFFIX}`;
}

/**
 * Reads the 2026-07-28 headers of a request, bounded: each at most once,
 * field-value characters only, within the lengths above. Returns the
 * headers, or why they are refused (HTTP 400, `HeaderMismatch`: "required
 * headers are missing/malformed").
 */
export function readMcpHeaders(req: IncomingMessage): McpHeaders | { problem: string } {
  const seen = new Map<string, number>();
  const params = new Map<string, string>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!.toLowerCase();
    if (k === "mcp-method" || k === "mcp-name" || k.startsWith("mcp-param-")) {
      const n = (seen.get(k) ?? 0) + 1;
      if (n > 1) return { problem: `repeated ${k} header` };
      seen.set(k, n);
      const v = ows(req.rawHeaders[i + 1]!);
      if (!FIELD_VALUE.test(v)) return { problem: `the ${k} header carries invalid characters` };
      if (k.startsWith("mcp-param-")) {
        const name = k.slice("mcp-param-".length);
        if (!name) return { problem: "an Mcp-Param- header without a name" };
        if (params.size >= MAX_PARAM_HEADERS) return { problem: `more than ${MAX_PARAM_HEADERS} Mcp-Param-* headers` };
        if (v.length > MAX_PARAM_HEADER_CHARS) return { problem: `the ${k} header is longer than ${MAX_PARAM_HEADER_CHARS} characters` };
        params.set(name, v);
      }
    }
  }
  const one = (h: string) => {
    const v = req.headers[h];
    return typeof v === "string" ? ows(v) : null;
  };
  const method = one("mcp-method");
  if (method !== null && (method.length === 0 || method.length > MAX_METHOD_HEADER_CHARS)) return { problem: `the Mcp-Method header must be 1 to ${MAX_METHOD_HEADER_CHARS} characters` };
  const rawName = one("mcp-name");
  let name: string | null = null;
  if (rawName !== null) {
    if (rawName.length > MAX_NAME_HEADER_CHARS) return { problem: `the Mcp-Name header is longer than ${MAX_NAME_HEADER_CHARS} characters` };
    const d = decodeHeaderValue(rawName);
    if (d === undefined) return { problem: "the Mcp-Name header carries an invalid Base64 sentinel value" };
    name = d;
  }
  const version = one("mcp-protocol-version");
  return { version, method, name, rawName, params };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Which body field the `Mcp-Name` header mirrors for a method (SEP-2243: required for these three). */
export function nameHeaderSource(method: string): "name" | "uri" | null {
  if (method === "tools/call" || method === "prompts/get") return "name";
  if (method === "resources/read") return "uri";
  return null;
}

/**
 * The object a request names, as `decide()` takes it (`DecideRequest.name`):
 * tools/call and prompts/get `params.name`; resources/read, subscribe and
 * unsubscribe `params.uri`; completion/complete the prompt name or the
 * resource-template URI of `params.ref`. Null for other methods, or when
 * absent or not a string.
 */
export function nameOf(method: string, params: Record<string, unknown> | undefined): string | null {
  if (!params) return null;
  let v: unknown;
  if (method === "tools/call" || method === "prompts/get") v = params.name;
  else if (method === "resources/read" || method === "resources/subscribe" || method === "resources/unsubscribe") v = params.uri;
  else if (method === "completion/complete") {
    const ref = params.ref;
    if (isRecord(ref)) v = ref.type === "ref/resource" ? ref.uri : ref.name;
  } else return null;
  return typeof v === "string" ? v : null;
}

/** Whether a message's params claim the stateless era (a `_meta` protocol version key is present). */
export function hasEnvelopeClaim(params: unknown): boolean {
  return isRecord(params) && isRecord(params._meta) && Object.hasOwn(params._meta, META_PROTOCOL_VERSION);
}

/** A refusal of the stateless-era checks: HTTP status and JSON-RPC error. */
export interface ProtocolRefusal {
  status: number;
  code: number;
  message: string;
  data?: unknown;
}

const mismatch = (detail: string, header: string): ProtocolRefusal => ({
  status: 400,
  code: HEADER_MISMATCH,
  message: `Header mismatch: ${detail}`,
  data: { mismatch: { header } },
});

/** The spec's UnsupportedProtocolVersionError (HTTP 400, -32022, `data.supported` and `data.requested`). */
export function unsupportedVersion(requested: string | null, supported: readonly string[], why?: string): ProtocolRefusal {
  return {
    status: 400,
    code: UNSUPPORTED_PROTOCOL_VERSION,
    message: why ? `Unsupported protocol version: ${why}` : "Unsupported protocol version",
    data: { supported: [...supported], ...(requested !== null ? { requested } : {}) },
  };
}

/**
 * The answer to a stateless-era request for a method the revision removed or
 * the agent does not know (basic/index, "Error Codes"; transports: HTTP 404
 * with -32601). The request is still refused with its decision line.
 */
export function methodNotFound(method: string): ProtocolRefusal {
  return { status: 404, code: METHOD_NOT_FOUND, message: `Method not found: ${JSON.stringify(method.slice(0, MAX_METHOD_HEADER_CHARS))}` };
}

/** A tool parameter mirrored into a header (`x-mcp-header` in its input schema). */
export interface ParamHeader {
  path: string[];
  header: string;
  type: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PRIMITIVE = new Set(["string", "integer", "boolean", "number"]);
/** Deepest `properties` chain searched for `x-mcp-header` (the arguments nest at most 32 levels). */
const MAX_SCHEMA_DEPTH = 32;

/**
 * The `x-mcp-header` declarations of a tool's input schema reachable through
 * `properties` keys only (the spec's static reachability); null when one is
 * invalid (not a token, not a primitive, not unique), since such a tool
 * definition is invalid.
 */
export function paramHeadersOf(inputSchema: unknown): ParamHeader[] | null {
  const out: ParamHeader[] = [];
  const seen = new Set<string>();
  const stack: [unknown, string[]][] = [[inputSchema, []]];
  while (stack.length) {
    const [node, path] = stack.pop()!;
    if (!isRecord(node) || path.length > MAX_SCHEMA_DEPTH) continue;
    if (path.length > 0 && Object.hasOwn(node, "x-mcp-header")) {
      const h = node["x-mcp-header"];
      const type = typeof node.type === "string" ? node.type : "";
      if (typeof h !== "string" || !TOKEN.test(h) || !PRIMITIVE.has(type) || seen.has(h.toLowerCase())) return null;
      seen.add(h.toLowerCase());
      out.push({ path, header: h, type });
    }
    if (isRecord(node.properties)) for (const [k, child] of Object.entries(node.properties)) stack.push([child, [...path, k]]);
  }
  return out;
}

const valueAt = (root: unknown, path: string[]): unknown => {
  let n: unknown = root;
  for (const k of path) {
    if (!isRecord(n) || !Object.hasOwn(n, k)) return undefined;
    n = n[k];
  }
  return n;
};

const primitiveText = (v: unknown): string | undefined => {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number" && Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v))) return String(v);
  return undefined;
};

/**
 * Checks one parsed stateless-era request against its headers (transports,
 * "Server Validation"), in the SDK v2 server's order: the `_meta` envelope
 * (-32602), `MCP-Protocol-Version` and `Mcp-Method` against the body
 * (-32020), the revision (-32022), the required headers present (-32020),
 * `Mcp-Name` against `params.name`/`params.uri` (-32020), and each
 * `x-mcp-header` parameter of the approved tool against `Mcp-Param-{Name}`
 * (-32020). Null when it passes.
 */
export function checkStateless(m: { id?: unknown; method: string; params?: Record<string, unknown> }, h: McpHeaders, params: ParamHeader[] | null): ProtocolRefusal | null {
  const meta = m.params?._meta;
  if (!isRecord(meta) || typeof meta[META_PROTOCOL_VERSION] !== "string") return { status: 400, code: INVALID_PARAMS, message: `Invalid params: _meta.${META_PROTOCOL_VERSION} must be a string` };
  if (!isRecord(meta[META_CLIENT_CAPABILITIES])) return { status: 400, code: INVALID_PARAMS, message: `Invalid params: _meta.${META_CLIENT_CAPABILITIES} is required (an object)` };
  const claimed = meta[META_PROTOCOL_VERSION] as string;
  if (h.version !== null && h.version !== claimed)
    return mismatch(`MCP-Protocol-Version header ${JSON.stringify(h.version)} does not match the body's protocol version ${JSON.stringify(claimed)}`, "MCP-Protocol-Version");
  if (h.method !== null && h.method !== m.method) return mismatch(`Mcp-Method header ${JSON.stringify(h.method)} does not match the body's method ${JSON.stringify(m.method)}`, "Mcp-Method");
  if (!MODERN_VERSIONS.includes(claimed)) return unsupportedVersion(claimed, SUPPORTED_VERSIONS);
  // Notifications: no header rules are defined for them in this revision (beyond the cross-checks above).
  if (m.id === undefined) return null;
  if (h.version === null) return mismatch("the required MCP-Protocol-Version header is absent", "MCP-Protocol-Version");
  if (h.method === null) return mismatch("the required Mcp-Method header is absent", "Mcp-Method");
  const source = nameHeaderSource(m.method);
  if (source) {
    const v = m.params?.[source];
    const body = typeof v === "string" ? v : null;
    if (body !== null && h.name === null) return mismatch(`the body carries params.${source} but the required Mcp-Name header is absent`, "Mcp-Name");
    if (body !== null && h.name !== body) return mismatch(`Mcp-Name header ${JSON.stringify(h.name)} does not match the body's params.${source} ${JSON.stringify(body)}`, "Mcp-Name");
  }
  if (m.method === "tools/call" && params?.length) {
    const args = m.params?.arguments;
    for (const p of params) {
      const raw = valueAt(args, p.path);
      if (raw === undefined || raw === null) continue;
      const body = primitiveText(raw);
      if (body === undefined) continue;
      const key = `Mcp-Param-${p.header}`;
      const sent = h.params.get(p.header.toLowerCase());
      if (sent === undefined) return mismatch(`the body carries ${p.path.join(".")} but the ${key} header is absent`, key);
      const decoded = decodeHeaderValue(sent);
      if (decoded === undefined) return mismatch(`the ${key} header carries an invalid Base64 sentinel value`, key);
      const numeric = (p.type === "integer" || p.type === "number") && typeof raw === "number" && /^-?\d+(\.\d+)?$/.test(decoded);
      if (numeric ? Number(decoded) !== raw : decoded !== body) return mismatch(`the ${key} header does not match the body's ${p.path.join(".")}`, key);
    }
  }
  return null;
}

/**
 * The `id` of a JSON-RPC request body, read without parsing the body: a
 * linear scan of the top-level object for the key `"id"` and a string or
 * number value. Null when the body is not an object, has no such id, or is
 * malformed before it. Used to answer a request denied on its headers alone
 * with its own id (no JSON.parse of the body).
 */
export function peekId(body: Uint8Array): string | number | null {
  let i = 0;
  const n = body.length;
  const ws = () => {
    while (i < n && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  };
  /** Index after the closing quote of the string starting at i (body[i] is the quote), or -1. */
  const endOfString = (from: number): number => {
    for (let j = from + 1; j < n; j++) {
      if (body[j] === 0x5c) j++;
      else if (body[j] === 0x22) return j + 1;
    }
    return -1;
  };
  /** Skips one value at i (string, container, literal); false when malformed. */
  const skipValue = (): boolean => {
    ws();
    if (i >= n) return false;
    const c = body[i];
    if (c === 0x22) {
      const e = endOfString(i);
      if (e < 0) return false;
      i = e;
      return true;
    }
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      while (i < n) {
        const d = body[i]!;
        if (d === 0x22) {
          const e = endOfString(i);
          if (e < 0) return false;
          i = e;
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          depth--;
          if (depth === 0) {
            i++;
            return true;
          }
        }
        i++;
      }
      return false;
    }
    while (i < n && body[i] !== 0x2c && body[i] !== 0x7d && body[i] !== 0x20 && body[i] !== 0x0a && body[i] !== 0x0d && body[i] !== 0x09) i++;
    return true;
  };
  ws();
  if (body[i] !== 0x7b) return null;
  i++;
  for (;;) {
    ws();
    if (body[i] !== 0x22) return null;
    const keyEnd = endOfString(i);
    if (keyEnd < 0) return null;
    const isId = keyEnd - i === 4 && body[i + 1] === 0x69 && body[i + 2] === 0x64;
    i = keyEnd;
    ws();
    if (body[i] !== 0x3a) return null;
    i++;
    ws();
    if (isId) {
      const start = i;
      if (body[i] === 0x22) {
        const e = endOfString(i);
        if (e < 0 || e - start > 260 * 6) return null;
        try {
          const v = JSON.parse(Buffer.from(body.subarray(start, e)).toString("utf8")) as unknown;
          return typeof v === "string" ? v : null;
        } catch {
          return null;
        }
      }
      let e = i;
      while (e < n && e - start < 32 && /[-+.eE0-9]/.test(String.fromCharCode(body[e]!))) e++;
      const v = Number(Buffer.from(body.subarray(start, e)).toString("latin1"));
      return e > start && Number.isFinite(v) ? v : null;
    }
    if (!skipValue()) return null;
    ws();
    if (body[i] === 0x2c) {
      i++;
      continue;
    }
    return null;
  }
}

/**
 * Cache hints of a result the agent decided per caller (caching, "Cache
 * Scope"): `cacheScope` is always "private" (the answer went through this
 * caller's policy; a shared cache must not serve it to another caller), and
 * `ttlMs` is the upstream's, never negative, and never past `maxMs` (the
 * agent's bound, or the time until the bundle in force goes stale, whichever
 * is sooner). A result without hints gets them only when `add` (stateless era).
 */
export function privateCacheHints(result: Record<string, unknown>, maxMs: number, add: boolean): Record<string, unknown> {
  const has = Object.hasOwn(result, "ttlMs") || Object.hasOwn(result, "cacheScope");
  if (!has && !add) return result;
  const t = result.ttlMs;
  const upstream = typeof t === "number" && Number.isFinite(t) && t > 0 ? Math.floor(t) : 0;
  return { ...result, ttlMs: Math.max(0, Math.min(upstream, Math.floor(maxMs))), cacheScope: "private" };
}
