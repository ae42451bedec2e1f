import type { BundleContent, BundleTool } from "./bundle";
import { PolicyEngine, type DecisionRequest } from "./engine";
import { approvalStage, type DecisionApproval } from "./approval";
import { isRevoked, unapprovedClient } from "./live-index";
import { toolHash, type ToolDefinition } from "./tool-hash";

/**
 * One decision, the same everywhere: the agent (agent/proxy.ts, agent/server.ts),
 * the simulator (lib/policy/service.ts), impact replay (lib/bundles/impact.ts)
 * and the golden cases (test/golden.test.ts) all call `decide()`. Pure and
 * synchronous: no I/O, no clock except `request.time ?? new Date()`. It never
 * throws: anything unexpected denies (stage "error").
 *
 * Checks, in this order (the first that denies answers):
 *   1. "revoked"   a revocation in the bundle's live sections covers the principal's token
 *                  (tenant, user, client, server, issued before the cut-off). Every method,
 *                  even initialize: the agent answers 401 invalid_token (and reports RFC 7009).
 *   2. "server"    the server is in the bundle and the principal's tenant may use it.
 *   3. "method"    the JSON-RPC method allow-list. `initialize`, `ping` and `notifications/*`
 *                  pass without a decision (decision "allow", stage "passthrough": nothing to
 *                  record); `tools/list` without a tool passes (stage "list"): its answer is
 *                  filtered with `listFilter()`; `tools/call` and `tools/list` with a tool are
 *                  decided below; any other method is denied
 *                  ("method X is not allowed through this agent").
 *   4. "client"    client approval: the tenant requires approved clients and this one is not.
 *   5. "catalogue" a tool name is given and the tool is in the approved catalogue of the server.
 *   6. "drift"     the tool is not in `live.drifted` (`serverId/tool` known to differ from the
 *                  approved definition: the agent's runtime set, or on the control plane the
 *                  tools whose latest version differs from the bundle's, see `driftedAgainst`).
 *   7. "arguments" every argument a policy of this server can read has the type its schema
 *                  declares (per server: lib/enforcement/model.ts argumentTypesByServer).
 *   8. "policy"    Cedar (lib/enforcement/engine.ts): a forbid wins, default deny, any
 *                  evaluation error denies (`errors`).
 *   9. "approval"  a deny caused only by forbids annotated `@approval("<group>")` while a permit
 *                  allows the call: a tools/call is allowed with an unexpired approval of this
 *                  exact call (callHash) in the bundle's live section `approvals`, otherwise denied
 *                  with `approval` set (lib/enforcement/approval.ts); a listing is allowed.
 * Step-up: `stepUpScopes` is non-empty exactly when the agent must answer 403
 * insufficient_scope (RFC 6750 §3.1): a tools/call denied at stage "policy" with
 * no determining policy and no error, where the bundle names scopes that grant
 * the tool (BundlePolicyMeta.scope of kind "scope" policies) and the principal
 * holds none of them. Bundles without `scope` metadata give no step-up scopes.
 *
 * Shapes (for callers):
 *   decide(view, request, live?) → Decision
 *     view    = decisionView(content, { engine? })   memoized per content object; pass the
 *               agent's existing engine to keep it across live-only revisions
 *     request = DecideRequest { method, serverId, tool?, principal, args?, time?, ip? }
 *     live    = LiveState { drifted?: ReadonlySet<"serverId/tool"> }
 *   listFilter(view, request, tools, live?) → ListFiltered
 *     the tools/list answer filter: keeps the approved, unchanged tools the caller may
 *     list; `changed` names tools whose live hash differs (the agent marks them drifted);
 *     `record` is the tools/list decision line's outcome.
 */

/** Who asks: the fields of a validated token the decision reads (lib/enforcement/token.ts Principal fits). */
export interface DecidePrincipal {
  issuer: string;
  tenantId: string;
  user: string;
  client: string;
  scopes: string[];
  groups: string[];
  /** The delegation chain (`act`), outermost actor first. */
  actors: string[];
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
}

export interface DecideRequest {
  /** The JSON-RPC method, as sent (anything: it is checked here). */
  method: string;
  serverId: string;
  /**
   * The object the method names: what the 2026-07-28 `Mcp-Name` header carries. tools/call and
   * prompts/get `params.name`; resources/read, resources/subscribe and resources/unsubscribe
   * `params.uri`; completion/complete the prompt name or resource-template URI of `params.ref`;
   * for a list method, one listed item. Absent for other methods.
   */
  name?: string | null;
  /** Alias of `name` (older callers); `name` wins when both are given. */
  tool?: string | null;
  principal: DecidePrincipal;
  /** tools/call `params.arguments` (anything that is not a plain object counts as none). */
  args?: Record<string, unknown> | null;
  time?: Date;
  ip?: string;
}

export interface LiveState {
  /** `driftKey()`s of catalogue entries known to differ from their approved definition (`serverId/tool` for tools). */
  drifted?: ReadonlySet<string>;
}

/** What a list answer lists (the field of its result), and what a catalogue entry is. */
export type ListKind = "tools" | "resources" | "resourceTemplates" | "prompts";
export const LIST_KINDS: readonly ListKind[] = ["tools", "resources", "resourceTemplates", "prompts"];

/**
 * The key of a catalogue entry in `LiveState.drifted`: `serverId/name` for a
 * tool (as before), `serverId/<kind>:name` for a resource (name = URI), a
 * resource template (name = URI template) or a prompt, so a prompt and a tool
 * of the same name never share a key.
 */
export function driftKey(serverId: string, kind: ListKind, name: string): string {
  return kind === "tools" ? `${serverId}/${name}` : `${serverId}/${kind}:${name}`;
}

export type DecisionStage = "passthrough" | "list" | "revoked" | "server" | "method" | "client" | "catalogue" | "drift" | "arguments" | "policy" | "approval" | "error";

export interface Decision {
  decision: "allow" | "deny";
  /** Why, in words an admin can read (never a token or secret). */
  reason: string;
  /** Policy ids that determined the answer (the permits that allowed, or the forbids that denied). */
  determining: string[];
  /** Policy ids that failed to evaluate; any error denies. */
  errors: string[];
  /** Which check answered. */
  stage: DecisionStage;
  /** Non-empty exactly when the caller should be asked for a token with one of these scopes (403 insufficient_scope). */
  stepUpScopes: string[];
  /** Set at stage "approval": the policies that asked, who may approve, and the hash of this exact call. */
  approval?: DecisionApproval;
}

/** A bundle prepared for deciding: its engine, live index (lib/enforcement/live-index.ts) and scope index. */
export interface DecisionView {
  readonly content: BundleContent;
  readonly engine: PolicyEngine;
  /** `serverId/tool` → scopes whose mapping grants the tool, sorted. */
  readonly scopesByTool: ReadonlyMap<string, readonly string[]>;
}

/** The JSON-RPC methods that reach the upstream without a decision of their own. */
export const PASSTHROUGH_METHODS: ReadonlySet<string> = new Set(["initialize", "ping"]);

const views = new WeakMap<BundleContent, DecisionView>();

/**
 * The decision view of bundle content, built once per content object. With
 * `engine`, that engine is used for Cedar (the agent keeps its engine, and its
 * preparsed slices, when only live sections changed: agent/bundle-sync.ts).
 */
export function decisionView(content: BundleContent, opts: { engine?: PolicyEngine } = {}): DecisionView {
  const cached = views.get(content);
  if (cached && (!opts.engine || cached.engine === opts.engine)) return cached;
  const scopes = new Map<string, Set<string>>();
  const policies = content.policies ?? {};
  for (const id of Object.keys(policies)) {
    const m = policies[id];
    if (!m || m.kind !== "scope" || typeof m.scope !== "string" || !m.scope || !Array.isArray(m.tools)) continue;
    for (const tool of m.tools) {
      const key = `${m.serverId}/${tool}`;
      let set = scopes.get(key);
      if (!set) scopes.set(key, (set = new Set()));
      set.add(m.scope);
    }
  }
  const scopesByTool = new Map<string, readonly string[]>();
  for (const [k, v] of scopes) scopesByTool.set(k, [...v].sort());
  const view: DecisionView = { content, engine: opts.engine ?? new PolicyEngine(content), scopesByTool };
  views.set(content, view);
  return view;
}

const deny = (stage: DecisionStage, reason: string, extra: Partial<Decision> = {}): Decision => ({ decision: "deny", reason, determining: [], errors: [], stage, stepUpScopes: [], ...extra });
const allow = (stage: DecisionStage, reason: string, determining: string[] = []): Decision => ({ decision: "allow", reason, determining, errors: [], stage, stepUpScopes: [] });

const str = (v: unknown): v is string => typeof v === "string";
const strings = (v: unknown): string[] => {
  const out: string[] = [];
  if (Array.isArray(v)) for (const x of v) if (typeof x === "string") out.push(x);
  return out;
};
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
/** Shown in reasons: bounded, one line. */
const shown = (v: string) => {
  const cut = v.length > 100 ? `${v.slice(0, 100)}…` : v;
  let out = "";
  for (let i = 0; i < cut.length; i++) {
    const c = cut.charCodeAt(i);
    out += c < 0x20 || c === 0x7f ? "?" : cut[i];
  }
  return out;
};

/** Decides one request against one bundle. Never throws. */
export function decide(view: DecisionView, request: DecideRequest, live: LiveState = {}): Decision {
  try {
    return decideUnsafe(view, request, live);
  } catch {
    return deny("error", "the request could not be evaluated");
  }
}

function decideUnsafe(view: DecisionView, request: DecideRequest, live: LiveState): Decision {
  const content = view.content;
  const p = request?.principal;
  if (!p || typeof p !== "object" || !str(p.tenantId) || !str(p.user) || !str(p.client)) return deny("error", "the request has no valid principal");
  const method = request.method;
  if (!str(method)) return deny("method", "the request has no method");
  const serverId = request.serverId;
  if (!str(serverId)) return deny("server", "unknown server");

  // 1. Revocation: a revoked token is refused whatever it asks.
  if (isRevoked(content, { tenantId: p.tenantId, user: p.user, client: p.client, iat: num(p.iat) }, serverId)) return deny("revoked", "the grant behind this token was revoked");

  // 2. Server and tenant.
  let server: BundleContent["servers"][number] | undefined;
  for (const s of content.servers) if (s.id === serverId) server = s;
  if (!server) return deny("server", "unknown server");
  if (!server.tenantIds.includes(p.tenantId)) return deny("server", "this tenant may not use this server");

  // 3. Method allow-list.
  const named = str(request.name) ? request.name : str(request.tool) ? request.tool : null;
  const toolGiven = named !== null && named.length > 0;
  if (PASSTHROUGH_METHODS.has(method) || method.startsWith("notifications/")) return allow("passthrough", `method ${method} passes without a decision`);
  if (method === "tools/list" && !toolGiven) return allow("list", "tools/list: the answer is filtered tool by tool");
  if (method !== "tools/call" && method !== "tools/list") return deny("method", `method ${shown(method)} is not allowed through this agent`);
  const action: DecisionRequest["action"] = method === "tools/call" ? "call_tool" : "list_tools";

  // 4. Client approval.
  const unapproved = unapprovedClient(content, p);
  if (unapproved) return deny("client", unapproved);

  // 5. Catalogue.
  if (!toolGiven) return deny("catalogue", "tools/call without a tool name");
  const tool = named as string;
  const approved: BundleTool | undefined = view.engine.tool(serverId, tool);
  if (!approved) return deny("catalogue", "the tool is not in the approved catalogue");

  // 6. Drift.
  if (live.drifted?.has(`${serverId}/${tool}`)) return deny("drift", "the tool changed upstream since it was approved");

  // 7, 8. Argument types and Cedar.
  const rawArgs = request.args;
  const args = rawArgs && typeof rawArgs === "object" && !Array.isArray(rawArgs) ? rawArgs : {};
  const q: DecisionRequest = {
    action,
    serverId,
    tool,
    tenantId: p.tenantId,
    user: p.user,
    groups: strings(p.groups),
    client: p.client,
    scopes: strings(p.scopes),
    args: action === "call_tool" ? args : {},
    delegation: { actors: strings(p.actors) },
    time: request.time instanceof Date && !Number.isNaN(request.time.getTime()) ? request.time : new Date(),
    ...(str(request.ip) ? { ip: request.ip } : {}),
    token: { iss: str(p.issuer) ? p.issuer : "", iat: num(p.iat), exp: num(p.exp) },
  };
  const r = view.engine.decide(q);
  const stage: DecisionStage = r.argument ? "arguments" : "policy";
  if (r.decision === "allow") return { decision: "allow", reason: r.reason, determining: r.determining, errors: [], stage, stepUpScopes: [] };
  // 9. Approval (issue 16): denied only by `@approval` forbids while a permit allows → allowed with a
  // live approval of this exact call, else denied at stage "approval" (lib/enforcement/approval.ts).
  const waiting = approvalStage(view, q, r, q.time!);
  if (waiting) return waiting;
  let stepUpScopes: string[] = [];
  if (action === "call_tool" && stage === "policy" && r.determining.length === 0 && r.errors.length === 0) {
    const granting = view.scopesByTool.get(`${serverId}/${tool}`) ?? [];
    const held = new Set(strings(p.scopes));
    let holds = false;
    for (const s of granting) if (held.has(s)) holds = true;
    if (granting.length && !holds) stepUpScopes = [...granting];
  }
  return { decision: "deny", reason: r.reason, determining: r.determining, errors: r.errors, stage, stepUpScopes };
}

export interface ListFiltered<T> {
  /** The items to answer with, in the upstream's order. */
  kept: T[];
  /** Why each other item was hidden ("name (not approved)", "(changed upstream)", "(not allowed)"). */
  hidden: string[];
  /**
   * Listed items whose live definition differs from the approved one: the agent adds
   * `driftKey(serverId, kind, name)` to its drift set. `tool` is `name` (older callers).
   */
  changed: { serverId: string; kind: ListKind; name: string; tool: string; live: string; approved: string }[];
  /** The outcome of the list's decision line. */
  record: Decision;
}

/**
 * Filters a list answer (`tools`, `resources`, `resourceTemplates` or
 * `prompts` of its result) with `decide()`. Every kind other than tools is
 * hidden entirely for now (these methods are not yet decided).
 */
export function filterList<T>(view: DecisionView, request: Omit<DecideRequest, "method" | "tool" | "name" | "args">, kind: ListKind, items: readonly T[], live: LiveState = {}): ListFiltered<T> {
  if (kind === "tools") return listFilter(view, request, items as readonly Partial<ToolDefinition>[], live) as unknown as ListFiltered<T>;
  const total = Array.isArray(items) ? items.length : 0;
  return { kept: [], hidden: [], changed: [], record: deny("method", `listed 0 of ${total} ${kind}: not allowed through this agent`) };
}

/**
 * A decision taken on the request's method and name alone (the 2026-07-28
 * `Mcp-Method` and `Mcp-Name` headers), before the body is parsed: `final` is
 * the decision `decide()` would take whatever the body's arguments are, or
 * null when the arguments are needed. It never allows what `decide()` with
 * the arguments would deny.
 */
export function decideOnHeaders(view: DecisionView, request: Omit<DecideRequest, "args">, live: LiveState = {}): { final: Decision } | { final: null } {
  try {
    const d = decide(view, { ...request, args: {} }, live);
    if (d.decision === "deny" && (d.stage === "revoked" || d.stage === "server" || d.stage === "method" || d.stage === "client" || d.stage === "catalogue" || d.stage === "drift" || d.stage === "error")) return { final: d };
    if (d.stage === "passthrough" || d.stage === "list") return { final: d };
    if (request.method === "tools/list") return { final: d };
    return { final: null };
  } catch {
    return { final: deny("error", "the request could not be evaluated") };
  }
}

/**
 * Filters a tools/list answer with `decide()`: a tool is kept when it is in
 * the approved catalogue, its live definition hashes to the approved one, it
 * is not known to have drifted, and Cedar allows `list_tools` on it. A revoked
 * token or an unapproved client lists nothing.
 */
export function listFilter<T extends Partial<ToolDefinition>>(view: DecisionView, request: Omit<DecideRequest, "method" | "tool" | "name" | "args">, tools: readonly T[], live: LiveState = {}): ListFiltered<T> {
  const kept: T[] = [];
  const hidden: string[] = [];
  const changed: ListFiltered<T>["changed"] = [];
  const total = Array.isArray(tools) ? tools.length : 0;
  try {
    const gate = decide(view, { ...request, method: "tools/list" }, live);
    if (gate.decision === "deny") return { kept, hidden, changed, record: { ...gate, reason: `listed 0 of ${total} tools: ${gate.reason}` } };
    const p = request.principal;
    const unapproved = unapprovedClient(view.content, p);
    if (unapproved) return { kept, hidden, changed, record: deny("client", `listed 0 of ${total} tools: ${unapproved}`) };
    for (let i = 0; i < total; i++) {
      const t = tools[i]!;
      const name = t && typeof t === "object" && str(t.name) ? t.name : null;
      const approved = name !== null ? view.engine.tool(request.serverId, name) : undefined;
      if (name === null || !approved) {
        hidden.push(`${shown(String(name ?? (t as { name?: unknown } | null)?.name))} (not approved)`);
        continue;
      }
      let hash: string;
      try {
        hash = toolHash(t as ToolDefinition);
      } catch {
        hash = "";
      }
      if (hash !== approved.hash) {
        changed.push({ serverId: request.serverId, kind: "tools", name, tool: name, live: hash, approved: approved.hash });
        hidden.push(`${shown(name)} (changed upstream)`);
        continue;
      }
      const d = decide(view, { ...request, method: "tools/list", name }, live);
      if (d.decision === "allow") kept.push(t);
      else if (d.stage === "drift") hidden.push(`${shown(name)} (changed upstream)`);
      else hidden.push(`${shown(name)} (not allowed)`);
    }
  } catch {
    return { kept: [], hidden: [], changed, record: deny("error", `listed 0 of ${total} tools: the list could not be evaluated`) };
  }
  return { kept, hidden, changed, record: allow("list", `listed ${kept.length} of ${total} tools${hidden.length ? `; hidden: ${hidden.join(", ")}` : ""}`) };
}

/**
 * The control plane's drift set for one bundle: approved tools whose latest
 * known version (`serverId/tool` → hash, from the catalogue in the database)
 * differs from the hash the bundle approved, as an agent would find upstream.
 */
export function driftedAgainst(content: BundleContent, latest: ReadonlyMap<string, string>): Set<string> {
  const out = new Set<string>();
  for (const t of content.catalogue) {
    const key = `${t.serverId}/${t.name}`;
    const h = latest.get(key);
    if (h !== undefined && h !== t.hash) out.add(key);
  }
  return out;
}
