import { z } from "zod";

/**
 * The decision record: ONE contract for the agent's write-ahead log, the
 * shipper's wire line and the control plane's ingest. Every bound is defined
 * here once; the agent clamps with `normalizeDecisionRecord` before it
 * writes, so it never writes a line ingest refuses, and ingest validates with
 * the same schema. Pure: no Node, no database, no Next.js.
 */
export const DECISION_LIMITS = {
  id: 36,
  tenantId: 100,
  serverId: 100,
  agentId: 100,
  time: 40,
  method: 100,
  tool: 128,
  user: 256,
  client: 256,
  scope: 128,
  scopes: 100,
  reason: 500,
  determiningItem: 200,
  determining: 100,
  /** `args` as UTF-8 JSON. */
  argsBytes: 16 * 1024,
  /** Nesting of `args` (objects and arrays): deep JSON can exhaust PostgreSQL's parser stack. */
  argsDepth: 32,
  group: 256,
  groups: 100,
  actor: 256,
  actors: 20,
  issuer: 2048,
  ip: 64,
  maskedPath: 512,
  masked: 100,
  /** Identical refusals one record stands for (the agent's gate aggregates repeats per window). */
  repeated: 1_000_000_000,
  latencyUs: 3_600_000_000,
} as const;

/** What replaces the end of a value cut to its bound (one UTF-16 unit, counted in the bound). */
export const TRUNCATION_MARK = "…";
/** The string form of a method or tool that was not a string and has no useful text form. */
export const INVALID_VALUE = "(invalid)";
/** The method of a request refused at the agent's gate (no token, a bad token or proof, a revoked grant): no MCP message was read. */
export const GATE_METHOD = "(gate)";
/** Added to `context.masked` when `args` was dropped for its size or depth. */
export const ARGS_TRUNCATED = "args-truncated";

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** A W3C trace id: 32 lowercase hex digits, not all zero. */
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;

// PostgreSQL refuses NUL in text and lone surrogates in jsonb: a string holding one would fail the
// whole insert, so the schema refuses it (ingest quarantines the line) and normalize replaces it.
// (String.prototype.isWellFormed is ES2024, outside this project's lib setting: a regex does it.)
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const LONE_SURROGATE_TEST = new RegExp(LONE_SURROGATE.source);
const storable = (s: string) => !s.includes("\u0000") && !LONE_SURROGATE_TEST.test(s);
const NOT_STORABLE = "must not contain NUL or unpaired surrogates";
const text = (max: number) => z.string().max(max).refine(storable, NOT_STORABLE);

/** The JSON text the args check made, reused by ingest's insert: one stringify per line. */
export const argsJsonText = new WeakMap<object, string>();
// Cheap for the common small object: only a long JSON text can pass the bound in UTF-8.
const utf8Bytes = (s: string) => (s.length * 3 <= DECISION_LIMITS.argsBytes ? s.length : new TextEncoder().encode(s).length);

/** Whether every key and string in a JSON value is storable and it nests at most `depth` levels. */
function jsonStorable(v: unknown, depth: number): boolean {
  if (typeof v === "string") return storable(v);
  if (v === null || typeof v !== "object") return true;
  if (depth <= 0) return false;
  if (Array.isArray(v)) return v.every((x) => jsonStorable(x, depth - 1));
  for (const [k, x] of Object.entries(v)) if (!storable(k) || !jsonStorable(x, depth - 1)) return false;
  return true;
}

/** What the decision saw besides the call; stored in decisions.context. */
export const decisionContext = z
  .object({
    groups: z.array(text(DECISION_LIMITS.group)).max(DECISION_LIMITS.groups).optional(),
    /** The OpenTelemetry trace of the call, when the agent traced it (agent/tracing.ts). */
    traceId: z.string().regex(TRACE_ID, "must be a W3C trace id (32 lowercase hex digits)").optional(),
    actors: z.array(text(DECISION_LIMITS.actor)).max(DECISION_LIMITS.actors).optional(),
    token: z
      .object({ iss: text(DECISION_LIMITS.issuer), iat: z.number().int().min(0), exp: z.number().int().min(0) })
      .strict()
      .optional(),
    ip: text(DECISION_LIMITS.ip).optional(),
    masked: z.array(text(DECISION_LIMITS.maskedPath)).max(DECISION_LIMITS.masked).optional(),
    repeated: z.number().int().min(1).max(DECISION_LIMITS.repeated).optional(),
  })
  .strict();

const args = z
  .record(z.string(), z.unknown())
  .nullable()
  .default(null)
  .refine(
    (a) => {
      if (a === null) return true;
      const json = JSON.stringify(a);
      argsJsonText.set(a, json);
      return utf8Bytes(json) <= DECISION_LIMITS.argsBytes;
    },
    `args must be at most ${DECISION_LIMITS.argsBytes / 1024} KiB as JSON (mask or trim large arguments in the agent)`,
  )
  .refine((a) => a === null || jsonStorable(a, DECISION_LIMITS.argsDepth), `args must nest at most ${DECISION_LIMITS.argsDepth} levels and hold no NUL or unpaired surrogate`);

/** The fields the agent sends for one decision (the wire line); agent and fleet come from its key, the time from the id. */
export const decisionLineShape = {
  id: z.string().regex(UUIDV7, "must be a UUIDv7"),
  bundleRevision: z.number().int().min(0).nullable().default(null),
  tenantId: text(DECISION_LIMITS.tenantId).nullable().default(null),
  serverId: text(DECISION_LIMITS.serverId),
  method: text(DECISION_LIMITS.method),
  tool: text(DECISION_LIMITS.tool).nullable().default(null),
  user: text(DECISION_LIMITS.user).nullable().default(null),
  client: text(DECISION_LIMITS.client).nullable().default(null),
  scopes: z.array(text(DECISION_LIMITS.scope)).max(DECISION_LIMITS.scopes).default([]),
  outcome: z.enum(["allow", "deny", "error"]),
  reason: text(DECISION_LIMITS.reason).default(""),
  determining: z.array(text(DECISION_LIMITS.determiningItem)).max(DECISION_LIMITS.determining).default([]),
  args,
  context: decisionContext.nullable().default(null),
  latencyUs: z.number().int().min(0).max(DECISION_LIMITS.latencyUs).nullable().default(null),
};

/** One decision line as agents send it (strict: unknown fields are refused). */
export const decisionLine = z.object(decisionLineShape).strict();
export type DecisionLine = z.infer<typeof decisionLine>;

// ---------------------------------------------------------------- fast path for the common line

// Any NUL or surrogate (paired or not) sends the line to zod, which decides exactly.
// eslint-disable-next-line no-control-regex -- NUL is what it looks for
const MAYBE_UNSTORABLE = /[\u0000\uD800-\uDFFF]/;
const isText = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max && !MAYBE_UNSTORABLE.test(v);
const isTextList = (v: unknown, max: number, maxItems: number): v is string[] => {
  if (!Array.isArray(v) || v.length > maxItems) return false;
  for (const x of v) if (!isText(x, max)) return false;
  return true;
};
const isWhole = (v: unknown, min: number, max: number): v is number => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;
const LINE_KEYS = new Set(Object.keys(decisionLineShape));
const CONTEXT_KEYS = new Set(["groups", "traceId", "actors", "token", "ip", "masked", "repeated"]);

/** Whether a context (not null) surely passes `decisionContext`; false means "ask zod". */
function fastContext(c: unknown): boolean {
  if (!isPlainObject(c)) return false;
  for (const k in c) if (!CONTEXT_KEYS.has(k) || c[k] === undefined) return false;
  if ("groups" in c && !isTextList(c.groups, DECISION_LIMITS.group, DECISION_LIMITS.groups)) return false;
  if ("traceId" in c && !(typeof c.traceId === "string" && TRACE_ID.test(c.traceId))) return false;
  if ("actors" in c && !isTextList(c.actors, DECISION_LIMITS.actor, DECISION_LIMITS.actors)) return false;
  if ("token" in c) {
    const t = c.token;
    if (!isPlainObject(t)) return false;
    for (const k in t) if (k !== "iss" && k !== "iat" && k !== "exp") return false;
    if (!isText(t.iss, DECISION_LIMITS.issuer) || !isWhole(t.iat, 0, Number.MAX_SAFE_INTEGER) || !isWhole(t.exp, 0, Number.MAX_SAFE_INTEGER)) return false;
  }
  if ("ip" in c && !isText(c.ip, DECISION_LIMITS.ip)) return false;
  if ("masked" in c && !isTextList(c.masked, DECISION_LIMITS.maskedPath, DECISION_LIMITS.masked)) return false;
  if ("repeated" in c && !isWhole(c.repeated, 1, DECISION_LIMITS.repeated)) return false;
  return true;
}

/** The JSON text of args (not null) when they surely pass the args check, else null ("ask zod"). */
function fastArgs(a: unknown): string | null {
  if (!isPlainObject(a)) return null;
  let json: string;
  try {
    json = JSON.stringify(a);
  } catch {
    return null;
  }
  // An escape (\u…) may stand for a NUL or a lone surrogate; a raw surrogate may be unpaired: zod decides.
  // A "__proto__" key: zod's copy of the record and the object as parsed could differ; zod decides.
  if (json.includes("\\u") || json.includes('"__proto__"') || MAYBE_UNSTORABLE.test(json)) return null;
  if (utf8Bytes(json) > DECISION_LIMITS.argsBytes) return null;
  // Nesting is at most the number of "{" and "[" in the text (those inside strings only raise the count).
  let open = 0;
  for (let i = 0; i < json.length; i++) {
    const ch = json.charCodeAt(i);
    if ((ch === 123 || ch === 91) && ++open > DECISION_LIMITS.argsDepth) return null;
  }
  return json;
}

/**
 * The common line checked without zod: returns the same value `decisionLine`
 * parses it to (defaults filled in) when the line surely passes, or null when
 * it is not sure (then zod decides, and words the problem). It only ever
 * accepts a subset of what the schema accepts: every bound is the schema's
 * own, and anything unusual (a NUL or any surrogate, an unknown key, a
 * non-plain object) is left to zod. Exact agreement is tested against zod in
 * test/decision-record-fast.test.ts. The args' JSON text it made goes to
 * `out.argsJson` when given (ingest's insert sends it as is), else to `argsJsonText`.
 */
export function fastDecisionLine(v: unknown, out?: { argsJson: string | null }): DecisionLine | null {
  if (!isPlainObject(v)) return null;
  for (const k in v) if (!LINE_KEYS.has(k) || v[k] === undefined) return null;
  const {
    id,
    bundleRevision = null,
    tenantId = null,
    serverId,
    method,
    tool = null,
    user = null,
    client = null,
    scopes = [],
    outcome,
    reason = "",
    determining = [],
    args = null,
    context = null,
    latencyUs = null,
  } = v;
  if (typeof id !== "string" || !UUIDV7.test(id)) return null;
  if (bundleRevision !== null && !isWhole(bundleRevision, 0, Number.MAX_SAFE_INTEGER)) return null;
  if (tenantId !== null && !isText(tenantId, DECISION_LIMITS.tenantId)) return null;
  if (!isText(serverId, DECISION_LIMITS.serverId) || !isText(method, DECISION_LIMITS.method)) return null;
  if (tool !== null && !isText(tool, DECISION_LIMITS.tool)) return null;
  if (user !== null && !isText(user, DECISION_LIMITS.user)) return null;
  if (client !== null && !isText(client, DECISION_LIMITS.client)) return null;
  if (!isTextList(scopes, DECISION_LIMITS.scope, DECISION_LIMITS.scopes)) return null;
  if (outcome !== "allow" && outcome !== "deny" && outcome !== "error") return null;
  if (!isText(reason, DECISION_LIMITS.reason)) return null;
  if (!isTextList(determining, DECISION_LIMITS.determiningItem, DECISION_LIMITS.determining)) return null;
  const argsJson = args === null ? null : fastArgs(args);
  if (args !== null && argsJson === null) return null;
  if (context !== null && !fastContext(context)) return null;
  if (latencyUs !== null && !isWhole(latencyUs, 0, DECISION_LIMITS.latencyUs)) return null;
  if (out) out.argsJson = argsJson;
  else if (argsJson !== null) argsJsonText.set(args as object, argsJson);
  return {
    id,
    bundleRevision: bundleRevision as number | null,
    tenantId: tenantId as string | null,
    serverId,
    method,
    tool: tool as string | null,
    user: user as string | null,
    client: client as string | null,
    scopes,
    outcome,
    reason,
    determining,
    args: args as Record<string, unknown> | null,
    context: context as DecisionContext | null,
    latencyUs: latencyUs as number | null,
  };
}

/** One decision as the agent writes it to its write-ahead log: the line plus its time and the agent's id (the shipper drops both). */
export const decisionRecord = z
  .object({
    ...decisionLineShape,
    time: text(DECISION_LIMITS.time),
    agentId: text(DECISION_LIMITS.agentId).nullable(),
  })
  .strict();

export type DecisionContext = z.infer<typeof decisionContext>;

/** A decision as written to the agent's write-ahead log. */
export interface DecisionRecord {
  id: string;
  time: string;
  agentId: string | null;
  bundleRevision: number | null;
  tenantId: string | null;
  serverId: string;
  method: string;
  tool: string | null;
  user: string | null;
  client: string | null;
  scopes: string[];
  outcome: "allow" | "deny" | "error";
  determining: string[];
  reason: string;
  /** Microseconds spent deciding. */
  latencyUs: number | null;
  /** tools/call only: the arguments after the bundle's masking rules (null when over the bound). */
  args?: Record<string, unknown> | null;
  /** tools/call only: what else the decision rested on; `masked` lists the masked paths (and "args-truncated"). */
  context?: DecisionContext | null;
}

// ---------------------------------------------------------------- normalization

/** A storable string of at most `max` UTF-16 units; longer ones end with the truncation mark. */
export function clampText(s: string, max: number): string {
  let out = s.includes("\u0000") ? s.replaceAll("\u0000", "\uFFFD") : s;
  if (out.length > max) {
    out = out.slice(0, max - TRUNCATION_MARK.length) + TRUNCATION_MARK;
  }
  // A cut (or the input) may leave half a surrogate pair.
  return LONE_SURROGATE_TEST.test(out) ? out.replace(LONE_SURROGATE, "\uFFFD") : out;
}

/** The text form of a value a client sent where a string belongs: strings clamped, numbers and booleans as text, anything else "(invalid)". */
function textOf(v: unknown, max: number): string {
  if (typeof v === "string") return clampText(v, max);
  if ((typeof v === "number" && Number.isFinite(v)) || typeof v === "boolean") return clampText(String(v), max);
  return INVALID_VALUE;
}

const textOrNull = (v: unknown, max: number) => (v === null || v === undefined ? null : textOf(v, max));

/** At most `maxItems` storable strings of at most `max` units: non-strings become their text form. */
function textList(v: unknown, max: number, maxItems: number): string[] {
  if (!Array.isArray(v)) return [];
  return v.slice(0, maxItems).map((x) => textOf(x, max));
}

/** A whole number in [0, max], or null. */
function whole(v: unknown, max: number): number | null {
  if (typeof v !== "number" || !Number.isFinite(v)) return null;
  return Math.min(max, Math.max(0, Math.round(v)));
}

/** Replaces every unstorable key or string, or null when the value nests too deep. */
function storableJson(v: unknown, depth: number): unknown {
  if (typeof v === "string") return storable(v) ? v : clampText(v, v.length);
  if (v === null || typeof v !== "object") return typeof v === "number" && !Number.isFinite(v) ? null : v;
  if (depth <= 0) throw new TooDeep();
  if (Array.isArray(v)) return v.map((x) => storableJson(x, depth - 1));
  // fromEntries defines own properties, so a "__proto__" key stays a key.
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => [storable(k) ? k : clampText(k, k.length), storableJson(x, depth - 1)]),
  );
}
class TooDeep extends Error {}

function normalizeArgs(v: unknown): { args: Record<string, unknown> | null; truncated: boolean } {
  if (v === null || v === undefined) return { args: null, truncated: false };
  if (typeof v !== "object" || Array.isArray(v)) return { args: null, truncated: true };
  let out: Record<string, unknown>;
  let json: string;
  try {
    out = storableJson(v, DECISION_LIMITS.argsDepth) as Record<string, unknown>;
    json = JSON.stringify(out);
  } catch {
    // Too deep, or not JSON at all (a cycle, a BigInt): the decision is kept, its arguments are not.
    return { args: null, truncated: true };
  }
  if (utf8Bytes(json) > DECISION_LIMITS.argsBytes) return { args: null, truncated: true };
  argsJsonText.set(out, json);
  return { args: out, truncated: false };
}

function normalizeContext(v: unknown, argsTruncated: boolean): DecisionContext | null {
  const c = v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  if (!c && !argsTruncated) return null;
  const out: DecisionContext = {};
  if (c?.groups !== undefined) out.groups = textList(c.groups, DECISION_LIMITS.group, DECISION_LIMITS.groups);
  if (typeof c?.traceId === "string" && TRACE_ID.test(c.traceId)) out.traceId = c.traceId;
  if (c?.actors !== undefined) out.actors = textList(c.actors, DECISION_LIMITS.actor, DECISION_LIMITS.actors);
  const t = c?.token && typeof c.token === "object" && !Array.isArray(c.token) ? (c.token as Record<string, unknown>) : null;
  if (t) out.token = { iss: textOf(t.iss, DECISION_LIMITS.issuer), iat: whole(t.iat, Number.MAX_SAFE_INTEGER) ?? 0, exp: whole(t.exp, Number.MAX_SAFE_INTEGER) ?? 0 };
  if (c?.ip !== undefined && c.ip !== null) out.ip = textOf(c.ip, DECISION_LIMITS.ip);
  if (c?.repeated !== undefined && c.repeated !== null) out.repeated = Math.max(1, whole(c.repeated, DECISION_LIMITS.repeated) ?? 1);
  if (c?.masked !== undefined || argsTruncated) {
    // One place is kept for the "args-truncated" mark.
    const masked = textList(c?.masked, DECISION_LIMITS.maskedPath, DECISION_LIMITS.masked - 1);
    if (argsTruncated && !masked.includes(ARGS_TRUNCATED)) masked.push(ARGS_TRUNCATED);
    out.masked = masked;
  }
  return out;
}

/**
 * Clamps and normalizes a decision before the agent writes it, so every line
 * it writes passes `decisionRecord`: strings cut to their bound (ending with
 * "…"), NUL and unpaired surrogates replaced, a non-string method or tool
 * turned into its text form or "(invalid)", lists cut to their bound, args
 * over the size or depth bound dropped (marked "args-truncated" in
 * `context.masked`), numbers made whole and in range. Never throws for
 * content. The id is kept as given (the agent makes UUIDv7s): re-making it
 * would break idempotent resends.
 */
export function normalizeDecisionRecord(input: unknown): DecisionRecord {
  const r = input && typeof input === "object" && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
  const { args, truncated } = normalizeArgs(r.args);
  const context = normalizeContext(r.context, truncated);
  const outcome = r.outcome === "allow" || r.outcome === "deny" ? r.outcome : "error";
  const out: DecisionRecord = {
    id: typeof r.id === "string" ? r.id.slice(0, DECISION_LIMITS.id) : "",
    time: typeof r.time === "string" ? clampText(r.time, DECISION_LIMITS.time) : new Date().toISOString(),
    agentId: textOrNull(r.agentId, DECISION_LIMITS.agentId),
    bundleRevision: whole(r.bundleRevision, 2 ** 31 - 1),
    tenantId: textOrNull(r.tenantId, DECISION_LIMITS.tenantId),
    serverId: textOf(r.serverId, DECISION_LIMITS.serverId),
    method: textOf(r.method, DECISION_LIMITS.method),
    tool: textOrNull(r.tool, DECISION_LIMITS.tool),
    user: textOrNull(r.user, DECISION_LIMITS.user),
    client: textOrNull(r.client, DECISION_LIMITS.client),
    scopes: textList(r.scopes, DECISION_LIMITS.scope, DECISION_LIMITS.scopes),
    outcome,
    determining: textList(r.determining, DECISION_LIMITS.determiningItem, DECISION_LIMITS.determining),
    reason: typeof r.reason === "string" ? clampText(r.reason, DECISION_LIMITS.reason) : "",
    latencyUs: whole(r.latencyUs, DECISION_LIMITS.latencyUs),
  };
  if (args !== null || r.args !== undefined) out.args = args;
  if (context !== null || r.context !== undefined) out.context = context;
  return out;
}

/** The wire line of a WAL record: its fields without `time` and `agentId` (the control plane takes those from the id and the key). */
export function toLine(rec: DecisionRecord): Omit<DecisionRecord, "time" | "agentId"> {
  const { time: _time, agentId: _agentId, ...line } = rec;
  return line;
}
