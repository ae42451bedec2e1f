import { redactUrlsIn } from "@/lib/enforcement/redact";
import type { IncomingMessage, ServerResponse } from "node:http";
import { driftOf, markDrift } from "./drift";
import { performance } from "node:perf_hooks";
import { EventEmitter } from "node:events";
import { newDecisionId } from "./decision-id";
import type { BundleServer } from "@/lib/enforcement/bundle";
import type { DecisionResult } from "@/lib/enforcement/engine";
import { decide, decideOnHeaders, decisionView, DECIDED_METHODS, type DecisionView, type ListKind } from "@/lib/enforcement/decide";
import {
  filterListRemembered,
  listMemoStats,
  messageEntryOf,
  noteListAnswer,
  noteUpstreamText,
  partsBytes,
  rememberedAnswer,
  rememberedTexts,
  serializeAnswer,
  splitIdTail,
  type AnswerKey,
  type AnswerParts,
  type ListMemoEntry,
  type RememberedText,
} from "./list-memo";
import type { BundleTool } from "@/lib/enforcement/bundle";
import { INVALID_VALUE } from "@/lib/enforcement/decision-record";
import { maskArgs } from "@/lib/enforcement/masking";
import { approvalAllowed, approvalAnswer, connectAnswer, consumeApproval } from "./approval";
import { ConnectionRequired } from "./connections";
import type { Installed } from "./bundle-sync";
import { CredentialUnavailable, inject, type CredentialBroker, type Injection } from "./credentials";
import type { Metrics } from "./metrics";
import type { Principal } from "./token";
import type { DecisionRecord, DecisionWal } from "./wal";
import { depthOf, MAX_ARGS_DEPTH, MAX_BATCH, MAX_EVENT_ID_CHARS, MAX_ID_CHARS, MAX_METHOD_CHARS, scanBody } from "./bounds";
import type { RequestTracker } from "./session";
import { UpstreamPools } from "./upstream";
import type { Readable } from "node:stream";
import {
  checkStateless,
  hasEnvelopeClaim,
  methodNotFound,
  REMOVED_IN_STATELESS,
  INVALID_PARAMS,
  isModernVersion,
  LEGACY_VERSIONS,
  MAX_CACHE_TTL_MS,
  META_PROTOCOL_VERSION,
  MODERN_VERSIONS,
  nameHeaderSource,
  nameOf,
  paramHeadersOf,
  peekId,
  privateCacheHints,
  SUPPORTED_VERSIONS,
  unsupportedVersion,
  type McpHeaders,
  type ParamHeader,
  type ProtocolRefusal,
} from "./protocol";
import { ERA_PROBE_TIMEOUT_MS, UpstreamEras, type ProbeAnswer } from "./upstream-era";
import type { CallTrace } from "./tracing";

export { MAX_BODY_BYTES } from "./bounds";

/** JSON-RPC error code for a request the policy denied. */
export const DENIED_CODE = -32003;
/** Largest upstream answer (a JSON body, or one SSE event) the agent reads; past it the answer is cut off (502 or end of stream). */
export const MAX_UPSTREAM_MESSAGE_BYTES = 16 * 1024 * 1024;

type Id = string | number;
interface JsonRpcMessage {
  jsonrpc?: unknown;
  id?: unknown;
  method?: unknown;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}
/** A message that passed `messageProblem`: a request or notification (method) or a response to the server (result or error). */
interface ValidMessage {
  jsonrpc: "2.0";
  id?: Id;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

export interface ProxyDeps {
  metrics: Metrics;
  wal: DecisionWal;
  agentId: () => string | null;
  log: (msg: string) => void;
  /** Upstream credentials from the vault; without it every upstream is called without one. */
  credentials?: CredentialBroker;
  /** Which request ids were forwarded in each (caller, server, session): answers are matched against it. */
  tracker: RequestTracker;
  /** Keep-alive pools to the upstreams (default: one of the proxy's own). */
  upstreams?: UpstreamPools;
  /** The era each upstream speaks (default: one of the proxy's own). */
  eras?: UpstreamEras;
}

/** One authenticated request to one server, as the HTTP layer resolved it. */
export interface Call {
  installed: Installed;
  server: BundleServer;
  principal: Principal;
  /** The caller's validated access token: only for an RFC 8693 exchange at the upstream's AS (oauth_token_exchange), never forwarded. */
  subjectToken?: string;
  /** The upstream's session id behind the client's (verified as this caller's), or null. */
  upstreamSession: string | null;
  /** The tracker key of this caller's requests in an upstream session (null: outside any session). */
  trackKey: (upstreamSession: string | null) => string;
  /** The session id the client is given for an upstream session id. */
  wrapSession: (upstreamId: string) => string;
  /** The 2026-07-28 request headers (MCP-Protocol-Version, Mcp-Method, Mcp-Name, Mcp-Param-*), read and bounded. */
  mcp: McpHeaders;
  /** The bundle in force now (long-lived streams re-check each notification against it), or null. */
  current: () => Installed | null;
  /** Until when (ms) the bundle in force may be enforced: cache lifetimes (`ttlMs`) never reach past it. */
  freshUntil: () => number;
  /** This request's trace when tracing is on (agent/tracing.ts); undefined costs nothing. */
  trace?: CallTrace;
}

/** The list methods, the kind `filterList()` takes and the result key that holds the items (the same word). */
const LIST_METHODS: Record<string, ListKind> = { "tools/list": "tools", "resources/list": "resources", "resources/templates/list": "resourceTemplates", "prompts/list": "prompts" };
const KIND_METHOD: Record<ListKind, string> = { tools: "tools/list", resources: "resources/list", resourceTemplates: "resources/templates/list", prompts: "prompts/list" };
/** Results that carry cache hints (caching, "Cacheable Results"). */
const CACHEABLE = new Set(["server/discover", "tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"]);
/** Capabilities a server/discover answer keeps: the methods behind any other are denied by the agent. */
const DISCOVER_CAPABILITIES = new Set(["tools", "resources", "prompts", "completions", "logging"]);
/** Methods that name an object in the body with no `Mcp-Name` header rule: their headers alone cannot be decided. */
const BODY_NAMED: ReadonlySet<string> = new Set(["completion/complete", "resources/subscribe", "resources/unsubscribe"]);
/** Whether a stateless-era request method exists for the agent: not removed in 2026-07-28, and one decide() knows. */
const statelessMethodExists = (method: string): boolean => !REMOVED_IN_STATELESS.has(method) && (method.startsWith("notifications/") || DECIDED_METHODS.includes(method));
/** Handshake-era revisions a stateless client can fall back to through the agent when the upstream has no stateless era. */
const FALLBACK_VERSIONS = LEGACY_VERSIONS.slice(0, 2);

/** The `x-mcp-header` parameters of an approved tool (its approved definition is the live one, or it is denied as drifted). */
const paramsByTool = new WeakMap<BundleTool, ParamHeader[] | null>();
function paramHeadersOfTool(t: BundleTool | undefined): ParamHeader[] | null {
  if (!t) return null;
  if (!paramsByTool.has(t)) paramsByTool.set(t, paramHeadersOf(t.inputSchema));
  return paramsByTool.get(t) ?? null;
}

const isId = (v: unknown): v is Id => (typeof v === "string" && v.length <= MAX_ID_CHARS) || (typeof v === "number" && Number.isFinite(v));
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The arguments decide() weighs (and the decision line masks): tools/call and
 * prompts/get `params.arguments`; completion/complete the arguments so far
 * (`params.context.arguments`) with the one being completed
 * (`params.argument.name` = its partial `value`). None for other methods.
 */
function argsOf(method: string, params: Record<string, unknown> | undefined): Record<string, unknown> {
  if (method === "tools/call" || method === "prompts/get") return isRecord(params?.arguments) ? params.arguments : {};
  if (method !== "completion/complete") return {};
  const context = isRecord(params?.context) && isRecord(params.context.arguments) ? params.context.arguments : {};
  const arg = isRecord(params?.argument) ? params.argument : null;
  return arg && typeof arg.name === "string" ? { ...context, [arg.name]: arg.value } : { ...context };
}

/**
 * Why a client's message is not one the agent forwards or decides, or null.
 * Ids must be strings or numbers (a Set or Map lookup by an object id is by
 * reference, which is how the tools/list filter was bypassed), methods short
 * strings, params an object; a message without a method is a response to the
 * server (one of result or error, with an id).
 */
export function messageProblem(m: JsonRpcMessage): string | null {
  if (m.jsonrpc !== "2.0") return 'jsonrpc must be "2.0"';
  if (m.id !== undefined && !isId(m.id)) return `the id must be a string (at most ${MAX_ID_CHARS} characters) or a number`;
  if (m.method !== undefined) {
    if (typeof m.method !== "string" || m.method.length === 0 || m.method.length > MAX_METHOD_CHARS) return `the method must be a string of 1 to ${MAX_METHOD_CHARS} characters`;
    if (m.result !== undefined || m.error !== undefined) return "a request carries no result or error";
    if (m.params !== undefined && !isRecord(m.params)) return "params must be an object";
    if (m.id === undefined && !m.method.startsWith("notifications/")) return "only notifications/* may omit the id";
    return null;
  }
  if (m.id === undefined) return "a message needs a method, or an id with a result or error";
  if ((m.result === undefined) === (m.error === undefined)) return "a response carries exactly one of result or error";
  return null;
}

/** The method of a message for the decision log (already a bounded string, or a placeholder). */
const methodLabel = (m: unknown): string => (isRecord(m) && typeof m.method === "string" && m.method.length <= MAX_METHOD_CHARS ? m.method : INVALID_VALUE);
const idOf = (m: unknown): Id | null => (isRecord(m) && isId(m.id) ? m.id : null);

/**
 * The masked arguments and the context that go into a tools/call decision
 * line. Bounds (sizes, counts, the "args-truncated" mark) are the record's
 * own: the WAL applies `normalizeDecisionRecord` to every record it writes.
 */
function callDetails(installed: Installed, serverId: string, tool: string, p: Principal, args: Record<string, unknown>): Pick<DecisionRecord, "args" | "context"> {
  const m = maskArgs(args, installed.content.masking ?? [], serverId, tool);
  return { args: m.args, context: principalContext(p, m.masked) };
}

function principalContext(p: Principal, masked?: string[]): NonNullable<DecisionRecord["context"]> {
  return { groups: p.groups, actors: p.actors, token: { iss: p.issuer, iat: p.iat, exp: p.exp }, ...(masked ? { masked } : {}) };
}

/** Why a tool call needs a token with more scopes (RFC 6750 step-up). */
export class InsufficientScope {
  constructor(readonly scopes: string[]) {}
}

/** The decision view of an installed bundle (memoized per content; keeps the agent's engine). */
export const viewOf = (installed: Installed): DecisionView => decisionView(installed.content, { engine: installed.engine });

/** A decision record written (or being written): its id and when it is durable. */
interface Recorded {
  id: string;
  durable: Promise<void>;
}

/**
 * The MCP proxy for one request to one server: bounds and validates every
 * message of a POST, decides each before anything reaches the upstream,
 * waits until every decision is durable in the log, forwards what is
 * allowed (without the client's Authorization or cookies), and screens
 * every upstream message on every stream (POST answers, standalone and
 * resumed GET streams): answers only to ids forwarded in this caller's
 * session, tools/list answers filtered.
 */
export class McpProxy {
  private readonly upstreams: UpstreamPools;
  private readonly eras: UpstreamEras;

  constructor(private readonly d: ProxyDeps) {
    this.upstreams = d.upstreams ?? new UpstreamPools();
    this.eras = d.eras ?? new UpstreamEras();
  }

  /** Closes the upstream connection pools. */
  close(): Promise<void> {
    return this.upstreams.close();
  }

  private record(
    installed: Installed,
    server: BundleServer,
    p: Principal,
    method: string,
    tool: string | null,
    r: DecisionResult,
    started: number,
    details: Pick<DecisionRecord, "args" | "context"> = {},
    trace?: CallTrace,
  ): Recorded {
    const id = newDecisionId();
    const seconds = (performance.now() - started) / 1000;
    this.d.metrics.decision(r.decision, seconds);
    // The WAL normalizes the record to its contract (lib/enforcement/decision-record.ts) and resolves once it is fsynced.
    const durable = this.d.wal.append({
      id,
      time: new Date().toISOString(),
      agentId: this.d.agentId(),
      bundleRevision: installed.content.manifest.revision,
      tenantId: p.tenantId,
      serverId: server.id,
      method,
      tool,
      user: p.user,
      client: p.client,
      scopes: p.scopes,
      outcome: r.decision,
      determining: r.determining,
      reason: r.reason,
      latencyUs: Math.round(seconds * 1e6),
      ...details,
      // A sampled call's trace id links the decision to its trace (context.traceId).
      ...(trace?.traceId ? { context: { ...details.context, traceId: trace.traceId } } : {}),
    });
    return { id, durable };
  }

  /**
   * Refuses a whole POST body before any message in it is decided (too
   * large, too deep, not JSON, not JSON-RPC): one deny decision in the log,
   * durable before the answer.
   */
  async refuse(
    res: ServerResponse,
    c: Call,
    status: number,
    code: number,
    message: string,
    method = INVALID_VALUE,
    id: Id | null = null,
    extra: { tool?: string | null; data?: unknown } = {},
  ): Promise<void> {
    const r: DecisionResult = { decision: "deny", reason: `refused before any decision: ${message}`, determining: [], errors: [] };
    const rec = this.record(c.installed, c.server, c.principal, method, extra.tool ?? null, r, performance.now(), { context: principalContext(c.principal) }, c.trace);
    if (!(await this.durable(res, [rec.durable]))) return;
    const data = isRecord(extra.data) ? { ...extra.data, decisionId: rec.id } : { decisionId: rec.id };
    sendJson(res, status, { jsonrpc: "2.0", id, error: { code, message, data } });
  }

  /** Answers a stateless-era refusal (HeaderMismatch, UnsupportedProtocolVersion, invalid params) with its decision line. */
  private refuseProtocol(res: ServerResponse, c: Call, p: ProtocolRefusal, method: string, id: Id | null, tool: string | null): Promise<void> {
    return this.refuse(res, c, p.status, p.code, p.message, method, id, { tool, data: p.data });
  }

  /** Waits until these decisions are on disk; on a log failure answers 503 itself and returns false (no record, no answer). */
  private async durable(res: ServerResponse, pending: Promise<void>[]): Promise<boolean> {
    try {
      await Promise.all(pending);
      return true;
    } catch (err) {
      this.d.log(`decision log write failed; request refused: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) sendJson(res, 503, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Decision log unavailable" } }, { "retry-after": "1" });
      return false;
    }
  }

  /** Decides one valid message with `decide()`: null to forward it, or the JSON-RPC answer to give instead. Throws InsufficientScope for step-up. */
  private decideMessage(c: Call, m: ValidMessage, pending: Promise<void>[]): ValidMessage | null {
    const { installed, server, principal: p } = c;
    // Responses (to the server's own requests) and notifications pass: they carry no call.
    if (m.method === undefined || m.id === undefined) return null;
    const started = performance.now();
    const note = (tool: string | null, r: DecisionResult, details?: Pick<DecisionRecord, "args" | "context">) => {
      const rec = this.record(installed, server, p, m.method!, tool, r, started, details, c.trace);
      pending.push(rec.durable);
      return rec.id;
    };
    // The object the method names (tool, prompt, resource URI): the record's `tool` field and decide()'s `name`.
    const name = nameOf(m.method, m.params);
    const withArgs = m.method === "tools/call" || m.method === "prompts/get" || m.method === "completion/complete";
    const args = argsOf(m.method, m.params);
    // Bounded before any work on them (the body scan already bounded the total).
    if (withArgs && depthOf(args, MAX_ARGS_DEPTH) > MAX_ARGS_DEPTH) {
      const r: DecisionResult = { decision: "deny", reason: `arguments nested deeper than ${MAX_ARGS_DEPTH} levels`, determining: [], errors: [] };
      return invalid(m.id, `Invalid Request: ${r.reason}`, note(name, r, { context: principalContext(p) }));
    }
    const ref = isRecord(m.params?.ref) ? m.params.ref.type : undefined;
    const completionRef = m.method === "completion/complete" && (ref === "ref/prompt" || ref === "ref/resource") ? ref : null;
    const subs = m.method === "subscriptions/listen" && isRecord(m.params?.notifications) ? m.params.notifications.resourceSubscriptions : undefined;
    // A malformed resourceSubscriptions (not an array of strings) is decided as one no URI can satisfy.
    const resourceSubscriptions = subs === undefined ? null : Array.isArray(subs) && subs.every((u) => typeof u === "string") ? (subs as string[]) : [""];
    // An approval of one call is used up here, before the decision is recorded or the call forwarded (agent/approval.ts).
    const step = c.trace?.step("mandate.decide");
    const d = consumeApproval(
      decide(viewOf(installed), { method: m.method, serverId: server.id, name, completionRef, resourceSubscriptions, principal: p, args, time: new Date() }, { drifted: driftOf(installed) }),
      installed.content.manifest.fleetId,
    );
    if (step) c.trace!.decided(step, { method: m.method, name, decision: d.decision, stage: d.stage, determining: d.determining });
    if (d.stage === "passthrough" || d.stage === "list") return null;
    // Decided first; only then are the arguments masked, for the log line (tools/call and prompts/get).
    const details = withArgs ? callDetails(installed, server.id, name ?? "", p, args) : undefined;
    const id = note(name, d, details);
    // Human approval (issue 16): a call held for a person is answered in the protocol's terms, an approved one reported (agent/approval.ts).
    if (m.method === "tools/call") {
      const ac = { content: installed.content, serverId: server.id, principal: p };
      if (d.decision === "allow") approvalAllowed(ac, m, d, id);
      else if (d.stage === "approval" && d.approval) return approvalAnswer(ac, m, d, id, args, pending, DENIED_CODE) as ValidMessage;
    }
    if (d.decision === "allow") return null;
    if (d.stepUpScopes.length) throw new InsufficientScope(d.stepUpScopes);
    return denial(m.id, id, d.reason);
  }

  /**
   * Filters the `kind` items of a list result with `filterList()` (whole lists remembered: agent/list-memo.ts).
   * The decision line's durable write goes into `pending` (the caller waits for it before the answer is
   * written, serializing the answer meanwhile), or, without `pending`, is waited for before it returns.
   */
  private async filterKind(c: Call, kind: ListKind, r: Record<string, unknown>, pending?: Promise<void>[]): Promise<{ r: Record<string, unknown>; entry?: ListMemoEntry | null }> {
    const { installed, server, principal: p } = c;
    const items = r[kind];
    if (!Array.isArray(items)) return { r };
    const started = performance.now();
    const step = c.trace?.step("mandate.list_filter");
    const f = filterListRemembered(viewOf(installed), { serverId: server.id, principal: p, time: new Date() }, kind, items, { drifted: driftOf(installed) }, r);
    for (const ch of f.changed) markDrift(installed, ch.serverId, ch.name, this.d, ch.live, ch.approved, ch.kind);
    if (step) c.trace!.decided(step, { method: KIND_METHOD[kind], name: null, decision: f.record.decision, determining: f.record.determining });
    await later(this.record(installed, server, p, KIND_METHOD[kind], null, f.record, started, {}, c.trace).durable, pending);
    return { r: { ...r, [kind]: f.kept }, entry: messageEntryOf(f) ?? null };
  }

  /**
   * The screened answer to an upstream list message, from its text alone (before any parse), when the
   * whole-list memo remembers it (agent/list-memo.ts `rememberedAnswer`): its id is one this caller's
   * request was forwarded with as a list method (`methodOf`), the text without the id is one this
   * caller's list was filtered from under this bundle view and drift set, compared in full, and an
   * answer to it was serialized with the same cache hints. Its decision line is written (into
   * `pending`, waited for before the answer is written) and drift marked as `filterKind` does. Null:
   * screen the message in full. `MANDATE_LIST_BYTES=0` turns it off.
   */
  private screenText(c: Call, text: string, methodOf: (id: Id) => string | undefined, stateless: boolean, pending: Promise<void>[]): AnswerParts | null {
    if (process.env.MANDATE_LIST_BYTES === "0") return null;
    const tail = splitIdTail(text);
    return tail ? this.screenTail(c, tail, methodOf, stateless, pending) : null;
  }

  /** `screenText` of a text already cut before its trailing id (`splitIdTail`, or pipeSse's byte comparison). */
  private screenTail(c: Call, tail: { prefix: string; id: string | number }, methodOf: (id: Id) => string | undefined, stateless: boolean, pending: Promise<void>[]): AnswerParts | null {
    if (process.env.MANDATE_LIST_BYTES === "0" || !isId(tail.id)) return null;
    const method = methodOf(tail.id);
    const kind = method === undefined ? undefined : LIST_METHODS[method];
    if (method === undefined || kind === undefined) return null;
    const { installed, server, principal: p } = c;
    const started = performance.now();
    const maxMs = Math.min(MAX_CACHE_TTL_MS, c.freshUntil() - Date.now());
    const sameHints = (h: AnswerKey["hints"]) => privateCacheHints(h.has ? { ttlMs: h.upstream } : {}, maxMs, stateless).ttlMs === h.out;
    const hit = rememberedAnswer(viewOf(installed), { serverId: server.id, principal: p }, kind, tail, { drifted: driftOf(installed) }, method, stateless, sameHints);
    if (!hit) return null;
    const step = c.trace?.step("mandate.list_filter");
    for (const ch of hit.changed) markDrift(installed, ch.serverId, ch.name, this.d, ch.live, ch.approved, ch.kind);
    if (step) c.trace!.decided(step, { method: KIND_METHOD[kind], name: null, decision: hit.record.decision, determining: hit.record.determining });
    const durable = this.record(installed, server, p, KIND_METHOD[kind], null, hit.record, started, {}, c.trace).durable;
    durable.catch(() => {});
    pending.push(durable);
    return hit.answer;
  }

  /**
   * A server/discover answer as this caller may see it: the stateless
   * revisions the agent also speaks, and only the capabilities whose
   * methods the agent decides (tools, resources, prompts, completions,
   * logging; `extensions` and `experimental` are dropped, their methods are
   * denied here). Logged as a list decision.
   */
  private async filterDiscover(c: Call, r: Record<string, unknown>, pending?: Promise<void>[]): Promise<Record<string, unknown>> {
    const started = performance.now();
    const out: Record<string, unknown> = { ...r };
    const dropped: string[] = [];
    if (Array.isArray(r.supportedVersions)) out.supportedVersions = r.supportedVersions.filter((v) => typeof v === "string" && MODERN_VERSIONS.includes(v));
    if (isRecord(r.capabilities)) {
      const caps: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(r.capabilities)) {
        if (DISCOVER_CAPABILITIES.has(k)) caps[k] = v;
        else dropped.push(k);
      }
      out.capabilities = caps;
    }
    const d: DecisionResult = { decision: "allow", reason: `server/discover answered${dropped.length ? `; capabilities removed: ${dropped.join(", ")}` : ""}`, determining: [], errors: [] };
    await later(this.record(c.installed, c.server, c.principal, "server/discover", null, d, started, {}, c.trace).durable, pending);
    return out;
  }

  /**
   * Screens a result by the method it answers: list items filtered per
   * caller (any result carrying a list of one of the four kinds is filtered,
   * whatever the method, so an answer replayed under another id is too);
   * server/discover filtered; cacheable results marked private, their
   * `ttlMs` clamped (MAX_CACHE_TTL_MS, and never past the bundle's
   * freshness). `stateless`: add the hints when the upstream left them out.
   * Decision lines' durable writes go into `pending` (see filterKind).
   */
  private async screenResult(c: Call, method: string | undefined, result: unknown, stateless: boolean, pending?: Promise<void>[]): Promise<unknown> {
    if (!isRecord(result)) return result;
    let r = result;
    let filtered = false;
    // The memo entry of the one list filtered (null: a list not remembered by its message's text), and how many were.
    let entry: ListMemoEntry | null = null;
    let lists = 0;
    for (const kind of Object.keys(KIND_METHOD) as ListKind[]) {
      if (LIST_METHODS[method ?? ""] === kind || Array.isArray(r[kind])) {
        const k = await this.filterKind(c, kind, r, pending);
        r = k.r;
        if (k.entry !== undefined) {
          entry = k.entry;
          lists++;
        }
        filtered = true;
      }
    }
    if (method === "server/discover") {
      r = await this.filterDiscover(c, r, pending);
      filtered = true;
      lists = 2;
    }
    const unhinted = r;
    if (filtered || CACHEABLE.has(method ?? "")) r = privateCacheHints(r, Math.min(MAX_CACHE_TTL_MS, c.freshUntil() - Date.now()), stateless && (filtered || CACHEABLE.has(method ?? "")));
    // One list, nothing else screened: its answer can be remembered serialized (screenText), with the cache hints it got.
    if (lists === 1 && entry && method !== undefined) {
      const has = Object.hasOwn(unhinted, "ttlMs") || Object.hasOwn(unhinted, "cacheScope");
      const hints = { has, upstream: typeof unhinted.ttlMs === "number" ? unhinted.ttlMs : null, out: r === unhinted ? undefined : (r.ttlMs as number) };
      listAnswers.set(r, { entry, key: { method, stateless, hints } });
    }
    return r;
  }

  /**
   * Screens a notification from the upstream against the bundle in force
   * now (a stream outlives bundles): nothing passes once the caller's token
   * is revoked or the tenant may no longer use the server, and a
   * notifications/resources/updated passes only when the caller may
   * subscribe to that URI. notifications/message (the upstream's log)
   * passes only when the server's `upstreamLogging` setting is on in that
   * bundle (lib/enforcement/bundle.ts).
   */
  private screenNotification(c: Call, m: Record<string, unknown>): Record<string, unknown> | null {
    const now = c.current();
    if (!now) return null;
    const view = viewOf(now);
    const gate = decide(view, { method: "ping", serverId: c.server.id, principal: c.principal }, { drifted: driftOf(now) });
    if (gate.decision === "deny") return null;
    if (m.method === "notifications/message" && now.content.servers.find((s) => s.id === c.server.id)?.upstreamLogging !== true) return null;
    if (m.method === "notifications/resources/updated") {
      const uri = isRecord(m.params) ? m.params.uri : undefined;
      if (typeof uri !== "string") return null;
      const d = decide(view, { method: "resources/subscribe", serverId: c.server.id, name: uri, principal: c.principal, time: new Date() }, { drifted: driftOf(now) });
      if (d.decision !== "allow") return null;
    }
    return m;
  }

  /**
   * Screens one upstream message, on any stream of this caller's
   * handshake-era session: the server's own requests pass, notifications
   * are screened (`screenNotification`); an answer passes only when its id
   * is one the agent forwarded for this caller in this session (an error
   * with a null id, which answers nothing identifiable, passes); results are
   * screened by the method they answer (`screenResult`). Returns null to
   * drop the message.
   */
  private async screen(c: Call, session: string, m: unknown, pending?: Promise<void>[]): Promise<unknown> {
    if (!isRecord(m)) return null;
    if (typeof m.method === "string") return m.id !== undefined ? m : this.screenNotification(c, m);
    if (m.id === null && m.error !== undefined && m.result === undefined) return m;
    if (!isId(m.id)) return null;
    const method = this.d.tracker.methodOf(session, m.id);
    if (method === undefined) return null;
    if (m.result === undefined) return m;
    return noted({ ...m, result: await this.screenResult(c, method, m.result, false, pending) });
  }

  /**
   * Screens one upstream message on the answer stream of one stateless
   * request (or its subscriptions/listen stream): the answer to that request
   * only, screened by its method; notifications screened; no server
   * requests (2026-07-28 has none on any stream: input requests travel
   * inside results, MRTR).
   */
  private async screenStateless(c: Call, request: ValidMessage, m: unknown, pending?: Promise<void>[]): Promise<unknown> {
    if (!isRecord(m)) return null;
    if (typeof m.method === "string") return m.id !== undefined ? null : this.screenNotification(c, m);
    if (m.id === null && m.error !== undefined && m.result === undefined) return m;
    if (m.id !== request.id) return null;
    if (m.result === undefined) return m;
    return noted({ ...m, result: await this.screenResult(c, request.method, m.result, true, pending) });
  }

  async handle(req: IncomingMessage, res: ServerResponse, c: Call, body: Buffer | null): Promise<void> {
    const session = c.trackKey(c.upstreamSession);
    const methodOf = (id: Id) => this.d.tracker.methodOf(session, id);
    const full = (m: unknown, pending: Promise<void>[]) => this.screen(c, session, m, pending);
    const screen: Screen = Object.assign((m: unknown, pending: Promise<void>[]) => full(m, pending), {
      text: (text: string, pending: Promise<void>[]) => this.screenText(c, text, methodOf, false, pending),
      remembered: () => rememberedTexts(viewOf(c.installed), { serverId: c.server.id, principal: c.principal }, { drifted: driftOf(c.installed) }),
      tail: (tail: IdTail, pending: Promise<void>[]) => this.screenTail(c, tail, methodOf, false, pending),
    });
    if (req.method !== "POST") {
      const cred = await this.credential(res, c, null);
      if (cred === false) return;
      await this.forward(req, res, c, cred, null, screen);
      if (req.method === "DELETE" && res.statusCode < 300) this.d.tracker.end(session);
      return;
    }
    const h = c.mcp;
    // A revision the agent does not know (the header is a date, checked before): the spec's error, listing what it serves.
    // A version past the handshake era (or not a date) is answered with the stateless revisions served, as server/discover lists them.
    if (h.version !== null && !SUPPORTED_VERSIONS.includes(h.version))
      return this.refuseProtocol(res, c, unsupportedVersion(h.version, isModernVersion(h.version) ? MODERN_VERSIONS : SUPPORTED_VERSIONS), h.method ?? INVALID_VALUE, peekId(body!), null);
    const modernHeader = h.version !== null && isModernVersion(h.version);
    // Header-first (2026-07-28): the method and name the headers carry are decided before the body is parsed.
    // Only a denial is final here; anything else is decided again on the body, which must agree with its headers.
    // A method whose Mcp-Name is required but absent is not decided here: the body check answers HeaderMismatch.
    // A method whose object is named in the body only (no Mcp-Name rule: completion/complete's ref) is not decided here either.
    if (modernHeader && h.method !== null && !(nameHeaderSource(h.method) !== null && h.name === null) && !BODY_NAMED.has(h.method)) {
      const started = performance.now();
      const step = c.trace?.step("mandate.decide");
      const hf = decideOnHeaders(viewOf(c.installed), { method: h.method, serverId: c.server.id, name: h.name, principal: c.principal, time: new Date() }, { drifted: driftOf(c.installed) });
      const missing = !statelessMethodExists(h.method);
      if (missing || (hf.final && hf.final.decision === "deny")) {
        // A body that disagrees with its headers is told so (HeaderMismatch, 400) before any answer the headers alone would get.
        const clash = this.headerClash(c, body!);
        if (clash) return this.refuseProtocol(res, c, clash.refusal, h.method, clash.id, h.name);
        if (missing) return this.refuseProtocol(res, c, methodNotFound(h.method), h.method, peekId(body!), h.name);
      }
      // Traced as a decision only when final here (a denial); otherwise the body's decision is the call's.
      if (step && hf.final?.decision === "deny") c.trace!.decided(step, { method: h.method, name: h.name, decision: "deny", stage: hf.final.stage, determining: hf.final.determining });
      else step?.end();
      if (hf.final && hf.final.decision === "deny") {
        const r = { ...hf.final, reason: `${hf.final.reason} (decided on the Mcp-Method and Mcp-Name headers)` };
        const rec = this.record(c.installed, c.server, c.principal, h.method, h.name, r, started, { context: principalContext(c.principal) }, c.trace);
        if (!(await this.durable(res, [rec.durable]))) return;
        if (r.stepUpScopes.length) throw new InsufficientScope(r.stepUpScopes);
        return sendJson(res, 200, denial(peekId(body!) as Id, rec.id, r.reason));
      }
    }
    const over = scanBody(body!);
    if (over) return this.refuse(res, c, 400, -32600, `Invalid Request: ${over}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body!.toString("utf8"));
    } catch {
      return this.refuse(res, c, 400, -32700, "Parse error");
    }
    const batch = Array.isArray(parsed);
    const messages = (batch ? parsed : [parsed]) as unknown[];
    if (!messages.length) return this.refuse(res, c, 400, -32600, "Invalid Request: empty batch");
    if (messages.length > MAX_BATCH) return this.refuse(res, c, 400, -32600, `Invalid Request: more than ${MAX_BATCH} messages in a batch`);
    // Era, body-primary (as the SDK v2 server classifies): a `_meta` protocol version claims the stateless era.
    const claims = messages.some((m) => isRecord(m) && hasEnvelopeClaim(m.params));
    if (batch && (claims || modernHeader)) return this.refuse(res, c, 400, -32600, "Invalid Request: JSON-RPC batches are not part of protocol revision 2026-07-28");
    if (!batch && claims) return this.handleStateless(req, res, c, parsed as Record<string, unknown>);
    if (!batch && modernHeader && isRecord(parsed) && parsed.method !== undefined) {
      // A 2026-07-28 header over a body without the per-request envelope: the envelope is missing (never served as the handshake era).
      const p: ProtocolRefusal =
        parsed.method === "initialize"
          ? { status: 400, code: -32020, message: "Header mismatch: an initialize request (handshake era) was sent with a 2026-07-28 MCP-Protocol-Version header" }
          : { status: 400, code: INVALID_PARAMS, message: `Invalid params: the MCP-Protocol-Version header names ${h.version}, but params._meta.${META_PROTOCOL_VERSION} is missing` };
      if (parsed.id !== undefined) return this.refuseProtocol(res, c, p, methodLabel(parsed), idOf(parsed), null);
    }
    const answers: ValidMessage[] = [];
    const forward: ValidMessage[] = [];
    const pending: Promise<void>[] = [];
    try {
      for (const raw of messages) {
        const problem = isRecord(raw) ? messageProblem(raw) : "a message must be an object";
        if (problem) {
          const r: DecisionResult = { decision: "deny", reason: `invalid message: ${problem}`, determining: [], errors: [] };
          const rec = this.record(c.installed, c.server, c.principal, methodLabel(raw), null, r, performance.now(), { context: principalContext(c.principal) }, c.trace);
          pending.push(rec.durable);
          answers.push(invalid(idOf(raw), `Invalid Request: ${problem}`, rec.id));
          continue;
        }
        const m = raw as ValidMessage;
        const answer = this.decideMessage(c, m, pending); // may throw InsufficientScope
        if (answer) answers.push(answer);
        else forward.push(m);
      }
    } catch (err) {
      // Step-up answers (403) too: only once every decision made so far is durable.
      if (!(await this.durable(res, pending))) return;
      throw err;
    }
    // No decision record, no answer: every decision of this body is on disk before anything moves.
    if (!(await this.durable(res, pending))) return;
    if (!forward.length) {
      if (!answers.length) return void res.writeHead(202).end();
      return sendJson(res, answers.every((a) => a.error && (a.error as { code: number }).code === -32600) ? 400 : 200, batch ? answers : answers[0]);
    }
    for (const m of forward) if (m.method !== undefined && m.id !== undefined) this.d.tracker.forwarded(session, m.id, m.method);
    const out = JSON.stringify(batch ? forward : forward[0]);
    const cred = await this.credential(res, c, batch ? null : (forward[0]!.id ?? null));
    if (cred === false) return;
    // A POST's stream answers that POST's requests: with no list among them, the list memo's shortcuts
    // (text compared, never parsed) have nothing to find there, and every message takes the full screen.
    const lists = forward.some((m) => m.method !== undefined && LIST_METHODS[m.method] !== undefined);
    await this.forward(req, res, c, cred, out, lists ? screen : (full as Screen), answers, batch, null, batch ? null : (forward[0]!.id ?? null));
  }

  /**
   * One stateless-era (2026-07-28) request: checked against its headers
   * (HeaderMismatch, envelope, revision), decided, then sent to an upstream
   * that speaks the revision (learned with server/discover), with the
   * request headers the upstream requires; its answer stream carries that
   * request's answer only. No session: nothing is tracked between requests.
   */
  private async handleStateless(req: IncomingMessage, res: ServerResponse, c: Call, raw: Record<string, unknown>): Promise<void> {
    const problem = messageProblem(raw);
    if (problem) return this.refuse(res, c, 400, -32600, `Invalid Request: ${problem}`, methodLabel(raw), idOf(raw));
    const m = raw as unknown as ValidMessage;
    if (m.method === undefined) return this.refuse(res, c, 400, -32600, "Invalid Request: responses are not posted in protocol revision 2026-07-28", INVALID_VALUE, idOf(raw));
    const name = nameOf(m.method, m.params);
    const params = m.method === "tools/call" && name !== null ? paramHeadersOfTool(c.installed.engine.tool(c.server.id, name)) : null;
    const refused = checkStateless({ id: m.id, method: m.method, params: m.params }, c.mcp, params);
    if (refused) return this.refuseProtocol(res, c, refused, m.method, m.id ?? null, name);
    // A method 2026-07-28 removed, or one the agent does not know: denied (never forwarded), answered as "Method not found".
    if (m.id !== undefined && !statelessMethodExists(m.method)) return this.refuseProtocol(res, c, methodNotFound(m.method), m.method, m.id, name);
    const pending: Promise<void>[] = [];
    let answer: ValidMessage | null;
    try {
      answer = this.decideMessage(c, m, pending);
    } catch (err) {
      if (!(await this.durable(res, pending))) return;
      throw err;
    }
    if (!(await this.durable(res, pending))) return;
    if (answer) return sendJson(res, answer.error && (answer.error as { code: number }).code === -32600 ? 400 : 200, answer);
    const cred = await this.credential(res, c, m.id ?? null, true);
    if (cred === false) return;
    // The upstream must speak this revision: a stateless request is never sent to a handshake-era upstream.
    const claimed = (m.params!._meta as Record<string, unknown>)[META_PROTOCOL_VERSION] as string;
    let modern: string[];
    try {
      modern = (await this.eras.get(c.installed, c.server.id, () => this.probeEra(c, cred))).modern;
    } catch (err) {
      this.d.metrics.upstreamErrors++;
      this.d.log(`server/discover probe of ${c.server.id} failed: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
      return this.refuse(res, c, 502, -32603, "Upstream unavailable", m.method, m.id ?? null, { tool: name });
    }
    if (!modern.includes(claimed)) {
      const p = modern.length
        ? unsupportedVersion(
            claimed,
            modern.filter((v) => MODERN_VERSIONS.includes(v)),
            "the upstream behind this agent does not speak this revision",
          )
        : unsupportedVersion(claimed, FALLBACK_VERSIONS, "the upstream behind this agent speaks only the handshake era (initialize); connect with one of the supported versions");
      return this.refuseProtocol(res, c, p, m.method, m.id ?? null, name);
    }
    const headers: Record<string, string> = { "mcp-protocol-version": claimed, "mcp-method": m.method };
    if (c.mcp.rawName !== null) headers["mcp-name"] = c.mcp.rawName;
    // Mcp-Param-* headers are forwarded (checked against the body above when the approved tool declares them).
    for (const [k, v] of c.mcp.params) headers[`mcp-param-${k}`] = v;
    const methodOf = (id: Id) => (id === m.id ? m.method : undefined);
    const full = (x: unknown, pending: Promise<void>[]) => this.screenStateless(c, m, x, pending);
    // Only a list's answer can be found by the list memo's shortcuts (screenText): anything else takes the full screen.
    const screen: Screen =
      LIST_METHODS[m.method] === undefined
        ? full
        : Object.assign((x: unknown, pending: Promise<void>[]) => full(x, pending), {
            text: (text: string, pending: Promise<void>[]) => this.screenText(c, text, methodOf, true, pending),
            remembered: () => rememberedTexts(viewOf(c.installed), { serverId: c.server.id, principal: c.principal }, { drifted: driftOf(c.installed) }),
            tail: (tail: IdTail, pending: Promise<void>[]) => this.screenTail(c, tail, methodOf, true, pending),
          });
    await this.forward(req, res, c, cred, JSON.stringify(m), screen, [], false, headers, m.id ?? null);
  }

  /**
   * The protocol refusal a single stateless-era body gets against its headers
   * (checkStateless), with the body's id; null when the body is not one
   * (over the bounds, not JSON, a batch, no envelope) or agrees with them.
   */
  private headerClash(c: Call, body: Buffer): { refusal: ProtocolRefusal; id: Id | null } | null {
    if (scanBody(body)) return null;
    let m: unknown;
    try {
      m = JSON.parse(body.toString("utf8"));
    } catch {
      return null;
    }
    if (!isRecord(m) || !hasEnvelopeClaim(m.params) || messageProblem(m) || typeof m.method !== "string") return null;
    const v = m as unknown as ValidMessage;
    const name = nameOf(v.method!, v.params);
    const params = v.method === "tools/call" && name !== null ? paramHeadersOfTool(c.installed.engine.tool(c.server.id, name)) : null;
    const refusal = checkStateless({ id: v.id, method: v.method!, params: v.params }, c.mcp, params);
    return refusal ? { refusal, id: v.id ?? null } : null;
  }

  /** Asks the upstream `server/discover` (2026-07-28) with this call's credential: how its era is learned. */
  private async probeEra(c: Call, credential: Injection | null): Promise<ProbeAnswer> {
    const version = MODERN_VERSIONS[0]!;
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": version, "mcp-method": "server/discover" };
    const target = inject(c.server.upstreamUrl, headers, credential);
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: "mandate-discover",
      method: "server/discover",
      params: { _meta: { [META_PROTOCOL_VERSION]: version, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "mandate-agent", version: "1" } } },
    });
    const up = await this.upstreams.request(target, { method: "POST", headers, body, signal: AbortSignal.timeout(ERA_PROBE_TIMEOUT_MS) });
    const text = await readCapped(up.body as unknown as AsyncIterable<Uint8Array>, 1024 * 1024);
    // Over the bound: the rest is not read (the connection is dropped, not returned to the pool half-read).
    if (text === null) (up.body as unknown as Readable).destroy();
    const type = String(up.headers["content-type"] ?? "");
    let json: unknown;
    try {
      if (text && type.includes("text/event-stream")) {
        const data = text
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim());
        json = data.length ? JSON.parse(data[data.length - 1]!) : undefined;
      } else json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: up.statusCode, json };
  }

  /**
   * The upstream credential for this call, or null for an open upstream.
   * Fails closed: when the bundle names a credential that cannot be resolved,
   * answers 502 itself and returns false (nothing is forwarded).
   */
  private async credential(res: ServerResponse, c: Call, id: Id | null, stateless = false): Promise<Injection | null | false> {
    if (!this.d.credentials) return null;
    const step = c.trace?.step("mandate.credential");
    try {
      const cred = await this.d.credentials.resolve(
        c.installed.content,
        c.server.id,
        c.principal.tenantId,
        c.subjectToken !== undefined ? { token: c.subjectToken, principal: c.principal } : undefined,
      );
      step?.end();
      return cred;
    } catch (err) {
      step?.end("credential_unavailable");
      // Brokered per-user OAuth: the user has no usable connection yet; a URL elicitation to the connect page (agent/connections.ts).
      if (err instanceof ConnectionRequired) {
        sendJson(res, 200, connectAnswer(id, err.answer, stateless));
        return false;
      }
      if (!(err instanceof CredentialUnavailable)) throw err;
      this.d.metrics.credentialFailures++;
      sendJson(res, 502, { jsonrpc: "2.0", id, error: { code: -32603, message: "Upstream credential unavailable" } });
      return false;
    }
  }

  /**
   * Sends the request upstream and streams the answer back. Every JSON
   * answer and SSE event passes through `screen`; `extra` (answers decided
   * here) are merged into the answer. The decision lines screening wrote
   * are durable before the answer (or the event) they screened is written.
   */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    c: Call,
    credential: Injection | null,
    body: string | null,
    screen: Screen,
    extra: ValidMessage[] = [],
    batch = false,
    stateless: Record<string, string> | null = null,
    /** The id of the one request `body` holds (null: a batch, a notification, no body). */
    single: Id | null = null,
  ): Promise<void> {
    const headers: Record<string, string> = {};
    // Only what the transport needs: never Authorization (no token pass-through), never cookies.
    for (const h of ["mcp-protocol-version", "accept"]) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    const lastEventId = req.headers["last-event-id"];
    if (typeof lastEventId === "string" && req.method === "GET") headers["last-event-id"] = lastEventId.slice(0, MAX_EVENT_ID_CHARS);
    // The upstream's own session id, never the client's (bound) one; none in the stateless era.
    if (c.upstreamSession !== null && !stateless) headers["mcp-session-id"] = c.upstreamSession;
    // Stateless era: the request headers the upstream validates against the body (they agree: checked here first).
    if (stateless) Object.assign(headers, stateless);
    if (body !== null) headers["content-type"] = "application/json";
    // The vault's credential for this (server, tenant), never the client's token.
    const target = inject(c.server.upstreamUrl, headers, credential);
    // The client went away before its answer was complete: the upstream request goes too. undici takes an EventEmitter
    // as the request's signal (its 'abort' event); an AbortController costs ~5 µs a call hot, ~20 µs in the gateway's
    // profile (the EventTarget's construction, undici's listener added and removed).
    const abort = new EventEmitter();
    res.on("close", () => {
      if (!res.writableFinished) abort.emit("abort");
    });
    let up: Awaited<ReturnType<UpstreamPools["request"]>>;
    // The upstream call's client span (its traceparent goes into the headers) and its time to the answer's headers.
    const span = c.trace?.upstream(req.method ?? "GET", c.server.upstreamUrl, headers);
    const sent = performance.now();
    try {
      up = await this.upstreams.request(target, { method: req.method ?? "GET", headers, body, signal: abort });
      this.d.metrics.upstream(c.server.id, up.statusCode, (performance.now() - sent) / 1000);
      span?.end(up.statusCode);
    } catch (err) {
      this.d.metrics.upstream(c.server.id, null, (performance.now() - sent) / 1000);
      span?.end(err instanceof Error ? err : new Error(String(err)));
      this.d.metrics.upstreamErrors++;
      this.d.log(`upstream ${c.server.id} unreachable: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
      return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream unavailable" } });
    }
    const upBody = up.body as unknown as Readable;
    // Errors of an abandoned body (aborted, cut off) end its reads; never an unhandled 'error' event.
    upBody.on("error", () => {});
    const status = up.statusCode;
    if (status >= 500) this.d.metrics.upstreamErrors++;
    const header = (h: string): string | null => {
      const v = up.headers[h];
      return typeof v === "string" ? v : Array.isArray(v) ? v.join(", ") : null;
    };
    // The answer is this caller's (screened and filtered for them): never stored by a cache between the agent and
    // its clients, whatever the upstream says (its `public` or `s-maxage` would let a shared cache serve it to another).
    const out: Record<string, string> = { "cache-control": "no-store" };
    for (const h of ["content-type", "mcp-protocol-version"]) {
      const v = header(h);
      if (v) out[h] = v;
    }
    const upstreamSession = header("mcp-session-id");
    if (upstreamSession && !stateless) out["mcp-session-id"] = c.wrapSession(upstreamSession);
    const type = (header("content-type") ?? "").toLowerCase();
    if (type.includes("text/event-stream")) {
      // One request forwarded alone, from a client that takes JSON: its answer may go out as one JSON body (SseAnswer).
      const sink = new SseAnswer(res, status, out, extra, single !== null && !batch && !extra.length && acceptsJson(req.headers.accept) ? single : null, () => {
        // Answered whole: what the upstream still sends is read and dropped for at most SSE_DRAIN_MS, then the connection goes.
        const t = setTimeout(() => upBody.destroy(), SSE_DRAIN_MS);
        upBody.once("close", () => clearTimeout(t));
      });
      await pipeSse(upBody, sink, screen).catch(() => {});
      upBody.destroy();
      sink.end();
      return;
    }
    const text = await readCapped(upBody, MAX_UPSTREAM_MESSAGE_BYTES).catch(() => undefined);
    if (text === undefined) {
      this.d.metrics.upstreamErrors++;
      return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream answer interrupted" } });
    }
    if (text === null) {
      upBody.destroy();
      this.d.metrics.upstreamErrors++;
      return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream answer too large" } });
    }
    if (type.includes("application/json") && text && !batch && !extra.length && screen.text) {
      // A list answer the memo remembers: answered from its text (screenText), its decision line durable first.
      const pending: Promise<void>[] = [];
      const answer = screen.text(text, pending);
      if (answer !== null) {
        if (!(await this.durable(res, pending))) return;
        return sendJsonText(res, status, answer, out);
      }
    }
    let json: unknown;
    if (type.includes("application/json") && text) {
      try {
        json = JSON.parse(text);
        noteUpstreamText(json, text);
      } catch {
        json = undefined;
      }
    }
    if (json !== undefined) {
      // Answers on a POST answer the requests of that POST, tracked under the session the request named (none for initialize).
      const list = Array.isArray(json) ? json : [json];
      const kept: unknown[] = [];
      const pending: Promise<void>[] = [];
      for (const m of list) {
        const s = await screen(m, pending);
        if (s !== null) kept.push(s);
      }
      // No decision record, no answer (a log failure answers 503).
      if (!(await this.durable(res, pending))) return;
      const merged = [...kept, ...extra];
      if (!merged.length) {
        this.d.metrics.upstreamErrors++;
        return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream answered a request it was not sent" } });
      }
      return sendJsonText(res, status, serializeAnswer(batch || Array.isArray(json) ? merged : merged.length === 1 ? merged[0] : merged), out);
    }
    if (extra.length && (status === 202 || !text)) return sendJson(res, 200, batch ? extra : extra[0], out);
    if (status < 300 && text) {
      // A success the agent cannot read cannot be screened: it is not passed on.
      this.d.metrics.upstreamErrors++;
      return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream answered in a form the agent does not forward" } });
    }
    setHeaders(res, out);
    res.writeHead(status).end(text);
  }
}

/** The body of an upstream answer as text, or null when it is larger than `max` bytes. */
async function readCapped(body: AsyncIterable<Uint8Array>, max: number): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A carriage return not followed by a line feed. SSE ends a line at CR, LF or CRLF; the agent cuts
 * lines at LF and CRLF only, so an event holding a lone CR would be read as other lines by the client
 * than by the agent: a message hidden after it in a comment or a passed-on field would reach the client
 * unscreened (test/agent-sse-differential.test.ts). Such an event is dropped whole.
 */
const LONE_CR = /\r(?!\n)/;

/**
 * Screens each SSE event's data (one JSON-RPC message) and passes the rest
 * of the event through; a dropped message drops its event. An event that
 * is not JSON is dropped too (it cannot be screened), so is one holding a
 * lone CR (LONE_CR), and one larger than MAX_UPSTREAM_MESSAGE_BYTES ends
 * the stream.
 */
export async function pipeSse(body: AsyncIterable<Uint8Array>, res: SseSink, screen: Screen): Promise<void> {
  const emit = async (event: string) => {
    if (LONE_CR.test(event)) return;
    const pending: Promise<void>[] = [];
    const lines = event.split(/\r?\n/);
    const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(l.startsWith("data: ") ? 6 : 5));
    // What to write of this event: its text, or, for a screened message, the event's other lines and the message's JSON text.
    let out: { head: string; json: string | AnswerParts; message?: unknown } | null = null;
    if (data.length) {
      const text = data.join("\n");
      const head = [...lines.filter((l) => !l.startsWith("data:")), "data: "].join("\n");
      // A list answer the memo remembers is answered from its text, without parsing it (screenText).
      const answer = screen.text ? screen.text(text, pending) : null;
      if (answer !== null) out = { head, json: answer };
      else {
        let m: unknown;
        try {
          m = JSON.parse(text);
          noteUpstreamText(m, text);
        } catch {
          return;
        }
        const r = await screen(m, pending);
        if (r === null) return void (await Promise.all(pending));
        // Written as the agent read it, even unchanged: the upstream's text could hold a key twice, which JSON.parse
        // reads with its last value and a client's parser may read with its first (a value the screen never saw).
        out = { head, json: serializeAnswer(r), message: r };
      }
    }
    // The decision lines of this message are on disk before it is written (a log failure ends the stream): their
    // write overlapped the serialization above.
    await Promise.all(pending);
    if (res.destroyed) return;
    if (!out) return void res.raw(event + "\n\n");
    res.event(out.head, out.json, out.message);
  };
  if (process.env.MANDATE_LIST_RAW === "0") return cutDecoded(body, emit, () => res.done);
  // The bytes not yet cut into events, in pieces as they came (never copied into one buffer): an event is
  // cut where /\r?\n\r?\n/ matches in the bytes (CR and LF are never part of a multi-byte UTF-8 character, so
  // the cuts are those of the decoded text), then compared undecoded with the texts the list memo holds for
  // this caller (`rememberedEvent`); any other event is decoded (as one stream of the same bytes would be)
  // and screened by `emit`.
  const emitBytes = async (event: Buffer[], length: number) => {
    const pending: Promise<void>[] = [];
    const hit = rememberedEvent(event, length, screen, pending);
    if (!hit) return emit(decodePieces(event));
    await Promise.all(pending);
    if (res.destroyed) return;
    res.event(hit.head, hit.answer);
  };
  let pieces: Buffer[] = [];
  let size = 0;
  // Line feeds before this offset were looked at already.
  let searched = 0;
  // The stream's first bytes while they may still be a byte order mark, which is dropped (as TextDecoder does).
  let start: Buffer | null = EMPTY;
  // Bytes after an answer that went out whole (SseAnswer sent it as JSON): read to the stream's end and dropped,
  // so the upstream connection is kept (leaving the loop early would destroy it); past the bound, it is dropped.
  let after = 0;
  for await (const chunk of body) {
    if (res.done) {
      if ((after += chunk.byteLength) > MAX_UPSTREAM_MESSAGE_BYTES) return;
      continue;
    }
    let b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (start) {
      if (start.length) b = Buffer.concat([start, b]);
      if (b.length < 3 && BOM.subarray(0, b.length).equals(b)) {
        start = b;
        continue;
      }
      start = null;
      if (b.subarray(0, 3).equals(BOM)) b = b.subarray(3);
    }
    if (!b.length) continue;
    pieces.push(b);
    size += b.length;
    for (;;) {
      const cut = findBoundary(pieces, size, searched);
      if (!cut.at) {
        searched = cut.searched;
        break;
      }
      const [from, to] = cut.at;
      const event = slicePieces(pieces, 0, from);
      pieces = slicePieces(pieces, to, size);
      size -= to;
      searched = 0;
      await emitBytes(event, from);
      if (res.done) break;
    }
    if (size > MAX_UPSTREAM_MESSAGE_BYTES) return;
  }
  if (res.done) return;
  if (start?.length) pieces = [start];
  const rest = decodePieces(pieces);
  if (rest.trim()) await emit(rest);
}

const EMPTY = Buffer.alloc(0);
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
/** Most bytes of an SSE event's lines before its data line, and of a message's text after a remembered text (the id's tail). */
const MAX_EVENT_HEAD = 8192;
const MAX_ID_TAIL = 8192;

/**
 * The sixth round's event cutting (`MANDATE_LIST_RAW=0`, kept for a same-run bench): the stream decoded
 * as it comes, a boundary looked for in each new piece (with the three characters before it) only, the
 * pieces joined once when an event is complete.
 */
async function cutDecoded(body: AsyncIterable<Uint8Array>, emit: (event: string) => Promise<void>, done: () => boolean): Promise<void> {
  const decoder = new TextDecoder();
  const boundary = /\r?\n\r?\n/g;
  let parts: string[] = [];
  let size = 0;
  let tail = "";
  let after = 0;
  for await (const chunk of body) {
    if (done()) {
      if ((after += chunk.byteLength) > MAX_UPSTREAM_MESSAGE_BYTES) return;
      continue;
    }
    const s = decoder.decode(chunk, { stream: true });
    if (!s) continue;
    parts.push(s);
    size += s.length;
    const probe = tail + s;
    tail = probe.slice(-3);
    boundary.lastIndex = 0;
    if (boundary.test(probe)) {
      let rest = parts.join("");
      for (;;) {
        boundary.lastIndex = 0;
        const hit = boundary.exec(rest);
        if (!hit) break;
        await emit(rest.slice(0, hit.index));
        rest = rest.slice(hit.index + hit[0].length);
        if (done()) break;
      }
      parts = rest ? [rest] : [];
      size = rest.length;
      tail = rest.slice(-3);
    }
    if (size > MAX_UPSTREAM_MESSAGE_BYTES) return;
  }
  if (done()) return;
  // An incomplete character at the very end is decoded (U+FFFD), as the byte path decodes it.
  parts.push(decoder.decode());
  const rest = parts.join("");
  if (rest.trim()) await emit(rest);
}

/** The byte at offset `at` of pieces holding `size` bytes (-1 past the end). */
function byteAt(pieces: readonly Buffer[], at: number): number {
  for (const p of pieces) {
    if (at < p.length) return p[at]!;
    at -= p.length;
  }
  return -1;
}

/**
 * The first match of /\r?\n\r?\n/ in the bytes of `pieces` (`size` in all) whose line feed is at or after
 * `from`, as [start, end); else how far the search got (a line feed too near the end to tell is looked
 * at again when more bytes come). Only line feeds are looked for (indexOf); their neighbours are read one by one.
 */
function findBoundary(pieces: readonly Buffer[], size: number, from: number): { at?: [number, number]; searched: number } {
  let base = 0;
  for (const p of pieces) {
    let i = from > base ? p.indexOf(0x0a, from - base) : p.indexOf(0x0a);
    for (; i >= 0; i = p.indexOf(0x0a, i + 1)) {
      const lf = base + i;
      const next = byteAt(pieces, lf + 1);
      let end = -1;
      if (next === 0x0a) end = lf + 2;
      else if (next === 0x0d) {
        if (lf + 2 >= size) return { searched: lf };
        if (byteAt(pieces, lf + 2) === 0x0a) end = lf + 3;
      } else if (next === -1) return { searched: lf };
      if (end >= 0) return { at: [lf > 0 && byteAt(pieces, lf - 1) === 0x0d ? lf - 1 : lf, end], searched: lf };
    }
    base += p.length;
  }
  return { searched: size };
}

/** The bytes [from, to) of pieces, as views of them (nothing copied). */
function slicePieces(pieces: readonly Buffer[], from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let base = 0;
  for (const p of pieces) {
    const end = base + p.length;
    if (end > from && base < to) out.push(p.subarray(Math.max(0, from - base), Math.min(p.length, to - base)));
    base = end;
    if (base >= to) break;
  }
  return out;
}

/** Pieces decoded as UTF-8, one stream (a byte order mark kept: the stream's own was dropped already). */
function decodePieces(pieces: readonly Buffer[]): string {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  if (pieces.length === 1) return decoder.decode(pieces[0]);
  const parts = pieces.map((p) => decoder.decode(p, { stream: true }));
  parts.push(decoder.decode());
  return parts.join("");
}

/** Whether the bytes of `pieces` from offset `at` start with `want` (compared where they are). */
function equalAt(pieces: readonly Buffer[], at: number, want: Buffer): boolean {
  let base = 0;
  let done = 0;
  for (const p of pieces) {
    const end = base + p.length;
    if (end > at + done) {
      const from = at + done - base;
      const n = Math.min(p.length - from, want.length - done);
      if (p.compare(want, done, done + n, from, from + n) !== 0) return false;
      done += n;
      if (done === want.length) return true;
    }
    base = end;
  }
  return done === want.length;
}

/**
 * A list answer the memo remembers, found from an SSE event's undecoded bytes: the event is lines that
 * are not data lines, then one data line (`data:` or `data: `) whose bytes are those of a text the memo
 * holds for this caller (`Screen.remembered`, compared in full where the bytes are), followed by at
 * most MAX_ID_TAIL bytes of valid UTF-8 without a line break that end it with its trailing id
 * (`splitIdTail` of the text's last characters and that tail cuts exactly at the text's end). That is
 * exactly the event whose decoded data `Screen.text` would cut to that text and id (decoding is
 * self-synchronizing: the remembered bytes are whole characters, and decode back to the text), and
 * `Screen.tail` then checks the id's method and every key of the memo as `Screen.text` does. Gives the
 * event's head (its other lines, then `data: `) and the answer; null: decode and screen the event.
 */
function rememberedEvent(event: readonly Buffer[], length: number, screen: Screen, pending: Promise<void>[]): { head: string; answer: AnswerParts } | null {
  if (!screen.remembered || !screen.tail || !event.length) return null;
  const first = event[0]!.length >= Math.min(length, MAX_EVENT_HEAD) ? event[0]! : Buffer.concat(event as Buffer[], Math.min(length, MAX_EVENT_HEAD));
  // The first data line: it starts the event or follows a line feed.
  let line = 0;
  while (first.length - line < 6 || first.toString("latin1", line, line + 5) !== "data:") {
    const lf = first.indexOf(0x0a, line);
    if (lf < 0) return null;
    line = lf + 1;
  }
  // A lone CR in the lines before the data line: decoded and dropped (LONE_CR), never passed on from here.
  for (let cr = first.indexOf(0x0d); cr >= 0 && cr < line; cr = first.indexOf(0x0d, cr + 1)) if (first[cr + 1] !== 0x0a) return null;
  const at = line + (first[line + 5] === 0x20 ? 6 : 5);
  const texts = screen.remembered();
  for (const t of texts) {
    const end = at + t.bytes.length;
    if (end >= length || length - end > MAX_ID_TAIL || !equalAt(event as Buffer[], at, t.bytes)) continue;
    const tailBytes = Buffer.concat(slicePieces(event, end, length));
    const tailText = tailBytes.toString("utf8");
    if (/[\r\n]/.test(tailText) || Buffer.byteLength(tailText) !== tailBytes.length || !Buffer.from(tailText).equals(tailBytes)) return null;
    const last = t.text.slice(-5);
    const split = splitIdTail(last + tailText);
    if (!split || split.prefix !== last) continue;
    const answer = screen.tail({ prefix: t.text, id: split.id }, pending);
    if (!answer) return null;
    listMemoStats.eventsMatched++;
    const lines = decodePieces([first.subarray(0, line)]).split(/\r?\n/);
    lines.pop();
    return { head: [...lines, "data: "].join("\n"), answer };
  }
  return null;
}

/**
 * Screens one upstream message (null: drop it). The durable writes of the decision lines it wrote go into
 * `pending`: the caller writes nothing of the message before they settle. `text`, when given, first tries
 * a message's JSON text unparsed (McpProxy.screenText): its screened JSON text, or null to parse and screen it.
 */
export type Screen = ((m: unknown, pending: Promise<void>[]) => Promise<unknown>) & {
  text?: (text: string, pending: Promise<void>[]) => AnswerParts | null;
  /** The upstream texts the list memo holds for this caller (agent/list-memo.ts `rememberedTexts`), to compare undecoded bytes with. */
  remembered?: () => readonly RememberedText[];
  /** `text` of a message already cut before its trailing id. */
  tail?: (tail: IdTail, pending: Promise<void>[]) => AnswerParts | null;
};

/** A message's text cut before its trailing `"id":<id>}` member, and the id (agent/list-memo.ts `splitIdTail`). */
type IdTail = { prefix: string; id: string | number };

/** Screened list results whose message's answer can be remembered serialized: the memo entry and the answer's key. */
const listAnswers = new WeakMap<object, { entry: ListMemoEntry; key: AnswerKey }>();

/** Writes a JSON text, or its parts one after the other (the remembered bytes as they are). */
function writeJson(res: ServerResponse, json: string | AnswerParts): void {
  if (typeof json === "string") return void res.write(json);
  res.write(json.before);
  res.write(json.id);
  res.write(json.after);
}

/**
 * Writes a screened SSE event: its head, the JSON text (or its parts: the remembered bytes as they are)
 * and the blank line, in one corked write (the long JSON text is never copied into one event string).
 * `MANDATE_LIST_BYTES=0`: one event string, as before (a same-run bench compares both).
 */
function writeEvent(res: ServerResponse, head: string, json: string | AnswerParts): void {
  if (typeof json === "string" && process.env.MANDATE_LIST_BYTES === "0") return void res.write(head + json + "\n\n");
  res.cork();
  res.write(head);
  writeJson(res, json);
  res.write("\n\n");
  res.uncork();
}

/** Where pipeSse writes an SSE answer's events: an SseAnswer, or (`startedSink`) a response whose SSE headers went out already. */
export interface SseSink {
  readonly destroyed: boolean;
  /** The whole answer went out (as JSON): nothing more is read from the upstream. */
  readonly done: boolean;
  /** An event passed on as the upstream wrote it (no data: nothing to screen), with its blank line. */
  raw(text: string): void;
  /** A screened event: its head (other lines, then `data: `) and its JSON text; `message`, the message it holds when parsed. */
  event(head: string, json: string | AnswerParts, message?: unknown): void;
}

/** A response whose SSE headers were written already: every event is written as it comes. */
export function startedSink(res: ServerResponse): SseSink {
  return {
    get destroyed() {
      return res.destroyed;
    },
    done: false,
    raw: (text) => void res.write(text),
    event: (head, json) => writeEvent(res, head, json),
  };
}

/**
 * How long an SSE answer held back for a JSON answer (SseAnswer) waits for its first event before its
 * SSE headers go out: a long call's client sees its answer start (a client or proxy between may time
 * out waiting for headers), and nothing is held past it.
 */
export const SSE_HOLD_MS = 50;

/** How long an upstream may go on sending after its answer went out whole (SseAnswer) before its connection is dropped. */
export const SSE_DRAIN_MS = 5_000;

/** The head of an event that holds one message and nothing else (no id, no retry, no comment). */
const PLAIN_HEADS = new Set(["data: ", "event: message\ndata: "]);

/**
 * An upstream's SSE answer to a POST, written to the client. When the POST held one request and the
 * client takes JSON (`single`: that request's id), the headers wait for the first event (at most
 * SSE_HOLD_MS): if it is that request's response and nothing else (a plain `message` event), it is
 * sent as one JSON body with a length, in one write, and the stream ends there (a server closes a POST's
 * stream after its response); the MCP transport lets a server answer a POST either way and a client
 * must read both. Anything else first (a notification, a request to the client, an event with an id
 * to resume from, or no event in time) starts the SSE answer as the upstream gave it, events written
 * as they come. `MANDATE_SSE_JSON=0`: always SSE, headers at once (the path before, for benches).
 */
export class SseAnswer implements SseSink {
  private started = false;
  done = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly single: Id | null;

  constructor(
    private readonly res: ServerResponse,
    private readonly status: number,
    private readonly headers: Record<string, string>,
    private readonly first: readonly ValidMessage[],
    single: Id | null,
    private readonly onDone?: () => void,
  ) {
    this.single = process.env.MANDATE_SSE_JSON === "0" ? null : single;
    if (this.single === null) this.start(true);
    else this.timer = setTimeout(() => this.start(true), SSE_HOLD_MS);
  }

  get destroyed(): boolean {
    return this.res.destroyed;
  }

  /** Writes the SSE headers (flushed at once when nothing follows them now) and the agent's own answers first. */
  private start(flush: boolean): void {
    if (this.started) return;
    this.started = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.res.destroyed) return;
    setHeaders(this.res, { ...this.headers, "x-accel-buffering": "no" });
    this.res.writeHead(this.status);
    if (flush) this.res.flushHeaders();
    for (const m of this.first) this.res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`);
  }

  raw(text: string): void {
    this.start(false);
    this.res.write(text);
  }

  event(head: string, json: string | AnswerParts, message?: unknown): void {
    // The first event, when it is the response: a parsed message (result or error, this id), or a remembered list
    // answer (always a result) for this id. sendJsonText sets the JSON content type over the upstream's.
    if (
      !this.started &&
      this.single !== null &&
      PLAIN_HEADS.has(head) &&
      (message !== undefined ? isResponseTo(message, this.single) : typeof json !== "string" && json.id === JSON.stringify(this.single))
    ) {
      this.started = true;
      this.done = true;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.onDone?.();
      return sendJsonText(this.res, this.status, json, this.headers);
    }
    this.start(false);
    writeEvent(this.res, head, json);
  }

  /** The upstream's stream ended (or failed): ends the answer (its headers first when no event came). */
  end(): void {
    if (this.done) return;
    this.start(false);
    this.res.end();
  }
}

/** A JSON-RPC response (result or error) to the request with this id. */
function isResponseTo(m: unknown, id: Id): boolean {
  return isRecord(m) && m.id === id && ("result" in m || "error" in m) && !("method" in m);
}

/**
 * Whether an Accept header takes `application/json` (itself, `application/*` or `*\/*`, not at q=0).
 * No header: false (the SSE answer as the upstream gave it).
 */
export function acceptsJson(accept: string | undefined): boolean {
  if (!accept || accept.length > 1024) return false;
  for (const range of accept.split(",")) {
    const [type, ...params] = range.split(";");
    const t = type!.trim().toLowerCase();
    if (t !== "application/json" && t !== "application/*" && t !== "*/*") continue;
    if (params.some((p) => /^\s*q\s*=\s*0(\.0{0,3})?\s*$/i.test(p))) continue;
    return true;
  }
  return false;
}

/** Marks a screened message whose result is in `listAnswers` for `serializeAnswer` (agent/list-memo.ts). */
function noted(m: Record<string, unknown>): Record<string, unknown> {
  const a = isRecord(m.result) ? listAnswers.get(m.result) : undefined;
  if (a) noteListAnswer(m, a.entry, a.key);
  return m;
}

/**
 * A decision line's durable write: into `pending` when the caller waits for it before answering (its
 * rejection is handled there; never unhandled meanwhile), else waited for now.
 */
async function later(durable: Promise<void>, pending: Promise<void>[] | undefined): Promise<void> {
  if (!pending) return durable;
  durable.catch(() => {});
  pending.push(durable);
}

function denial(id: Id, decisionId: string, reason: string): ValidMessage {
  return { jsonrpc: "2.0", id, error: { code: DENIED_CODE, message: "Denied by policy", data: { decisionId, reason } } };
}

function invalid(id: Id | null, message: string, decisionId: string): ValidMessage {
  return { jsonrpc: "2.0", id: id as Id, error: { code: -32600, message, data: { decisionId } } };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** Answers with a JSON text serialized already. */
function sendJsonText(res: ServerResponse, status: number, text: string | AnswerParts, headers: Record<string, string> = {}): void {
  if (typeof text !== "string") {
    setHeaders(res, { ...headers, "content-type": "application/json", "content-length": String(partsBytes(text)) });
    res.writeHead(status);
    res.cork();
    writeJson(res, text);
    res.uncork();
    return void res.end();
  }
  setHeaders(res, { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
  res.writeHead(status).end(text);
}

/** Headers set with setHeader stay readable (getHeader) after they are sent. */
function setHeaders(res: ServerResponse, headers: Record<string, string>): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
}
