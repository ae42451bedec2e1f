import type { BundleContent } from "./bundle";
import { entryHash, entryKey, KIND_OF_FIELD, LIST_FIELD, matchTemplate, MAX_ENTRY_KEY, normalizeUri, type CatalogueKind } from "./catalogue-entry";
import { PolicyEngine, type DecisionRequest } from "./engine";
import type { CedarAction } from "./model";
import { approvalStage, type DecisionApproval } from "./approval";
import { isRevoked, unapprovedClient } from "./live-index";
import type { ToolDefinition } from "./tool-hash";

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
 *   3. "method"    the JSON-RPC method allow-list (METHODS below):
 *                    initialize, ping, notifications/*      pass without a decision (stage "passthrough")
 *                    tools/list, resources/list,            without a name: pass (stage "list"), the answer
 *                    resources/templates/list, prompts/list is filtered with filterList(); with a name: the
 *                                                           list_* action on that entry
 *                    server/discover                        passes (stage "list"), its answer filtered
 *                    tools/call                             call_tool on the tool `name`
 *                    resources/read|subscribe|unsubscribe   read_resource on every approved resource the URI
 *                                                           `name` is a spelling of (normalizeUri), or, when
 *                                                           it is no approved resource, on every approved
 *                                                           template the URI matches (each must allow; the
 *                                                           template's variables are context.args)
 *                    prompts/get                            get_prompt on the prompt `name`, args = arguments
 *                    completion/complete                    complete on the prompt or template `name`
 *                                                           (`completionRef`; without it every entry of that
 *                                                           name must allow), args = the arguments so far
 *                    subscriptions/listen                   every URI of `resourceSubscriptions` decided as
 *                                                           resources/subscribe; one denial denies
 *                    logging/setLevel                       the bundle's choice per server: denied here unless
 *                                                           the server has `upstreamLogging` (an upstream's log
 *                                                           can carry the credential the agent placed and other
 *                                                           callers' data; no policy object names it); with it,
 *                                                           allowed at stage "logging" after check 4
 *                  Anything else is denied ("method X is not allowed through this agent"),
 *                  among them tasks/* and any method a later revision adds.
 *   4. "client"    client approval: the tenant requires approved clients and this one is not.
 *   5. "catalogue" a name is given and it is in the approved catalogue of the server (tools,
 *                  resources, resource templates, prompts: lib/enforcement/catalogue-entry.ts).
 *   6. "drift"     the entry is not in `live.drifted` (`driftKey()`s of entries known to differ
 *                  from the approved definition: the agent's runtime set, or on the control plane
 *                  the entries whose latest version differs from the bundle's, see `driftedAgainst`).
 *   7. "arguments" every argument a policy of this server can read has the type its schema
 *                  declares (per server: lib/enforcement/model.ts argumentTypesByServer; prompt
 *                  arguments and template variables are strings, stringArgumentsByServer).
 *   8. "policy"    Cedar (lib/enforcement/engine.ts): a forbid wins, default deny, any
 *                  evaluation error denies (`errors`).
 *   9. "approval"  a deny caused only by forbids annotated `@approval("<group>")` while a permit
 *                  allows the call: a tools/call is allowed with an unexpired approval of this
 *                  exact call (callHash) in the bundle's live section `approvals`, otherwise denied
 *                  with `approval` set (lib/enforcement/approval.ts); a listing is allowed. For a
 *                  resource read, prompt get or completion an `@approval` forbid denies like any
 *                  forbid (no approval flow covers them).
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
 *     request = DecideRequest { method, serverId, name? (tool? alias), principal, args?,
 *               completionRef?, resourceSubscriptions?, time?, ip? }
 *     live    = LiveState { drifted?: ReadonlySet<driftKey(serverId, kind, name)> }
 *   decideOnHeaders(view, request without args, live?) → { final: Decision | null }
 *     the decision on Mcp-Method / Mcp-Name alone, or null when the body is needed
 *   filterList(view, request, "tools" | "resources" | "resourceTemplates" | "prompts", items, live?)
 *     → ListFiltered: keeps the approved, unchanged items the caller may list; `changed`
 *     names items whose live hash differs (the agent marks them drifted); `record` is the
 *     list's decision line outcome. listFilter(view, request, tools, live?) = filterList on tools.
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
  /**
   * completion/complete: the `params.ref.type` of the body. Without it the name is decided as
   * every approved prompt and resource template of that name (each must allow), so a header
   * decision holds whichever the body says.
   */
  completionRef?: "ref/prompt" | "ref/resource" | null;
  /** subscriptions/listen: `params.notifications.resourceSubscriptions` (each decided as resources/subscribe). */
  resourceSubscriptions?: readonly string[] | null;
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

export type DecisionStage = "passthrough" | "list" | "logging" | "revoked" | "server" | "method" | "client" | "catalogue" | "drift" | "arguments" | "policy" | "approval" | "error";

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
  const nameGiven = named !== null && named.length > 0;
  if (PASSTHROUGH_METHODS.has(method) || method.startsWith("notifications/")) return allow("passthrough", `method ${method} passes without a decision`);
  if (method === "logging/setLevel") {
    if (server.upstreamLogging !== true) return deny("method", LOGGING_REFUSED);
    const unapprovedLogger = unapprovedClient(content, p);
    if (unapprovedLogger) return deny("client", unapprovedLogger);
    return allow("logging", "method logging/setLevel passes: this server's upstreamLogging setting is on");
  }
  const rule = METHODS.get(method);
  if (!rule) return deny("method", `method ${shown(method)} is not allowed through this agent`);
  if (rule.list && !nameGiven) return allow("list", `${method}: the answer is filtered item by item`);
  if (rule.discover) return allow("list", `${method}: the answer is filtered like a list`);

  // 4. Client approval.
  const unapproved = unapprovedClient(content, p);
  if (unapproved) return deny("client", unapproved);

  if (rule.listen) return decideListen(view, request, live);

  // 5. Catalogue.
  if (!nameGiven) return deny("catalogue", `${method} without ${rule.kinds[0] === "resource" ? "a resource URI" : "a name"}`);
  if (named.length > MAX_ENTRY_KEY) return deny("catalogue", "the name is too long");
  let kinds = rule.kinds;
  if (method === "completion/complete" && (request.completionRef === "ref/prompt" || request.completionRef === "ref/resource"))
    kinds = [request.completionRef === "ref/prompt" ? "prompt" : "resourceTemplate"];
  const rawArgs = request.args;
  const args = rawArgs && typeof rawArgs === "object" && !Array.isArray(rawArgs) ? rawArgs : {};
  const targets: { kind: CatalogueKind; key: string; args: Record<string, unknown> }[] = [];
  for (const kind of kinds) {
    if (rule.action === "read_resource") {
      // Every approved resource this URI is a spelling of (itself included): its policies apply whatever the spelling.
      for (const key of equivalentResources(view.content, serverId, named)) if (view.engine.entry(serverId, "resource", key)) targets.push({ kind: "resource", key, args: {} });
    } else if (view.engine.entry(serverId, kind, named))
      targets.push({ kind, key: named, args: rule.action === "call_tool" || rule.action === "get_prompt" || rule.action === "complete" ? args : {} });
  }
  // A URI that is no approved resource is read through every approved template it matches (each must allow).
  if (rule.action === "read_resource" && targets.length === 0) {
    for (const t of view.engine.templatesOf(serverId)) {
      const vars = matchTemplate(t.name, named);
      if (vars) targets.push({ kind: "resourceTemplate", key: t.name, args: vars });
    }
  }
  if (targets.length === 0) return deny("catalogue", rule.action === "call_tool" ? "the tool is not in the approved catalogue" : `${rule.what} is not in the approved catalogue`);

  // 6. Drift.
  for (const t of targets)
    if (live.drifted?.has(driftKey(serverId, LIST_FIELD[t.kind], t.key)))
      return deny("drift", t.kind === "tool" ? "the tool changed upstream since it was approved" : `${KIND_WORDS[t.kind]} changed upstream since it was approved`);

  // 7, 8, 9. Argument types, Cedar, approval: every target must allow (the first denial answers).
  let last: Decision | null = null;
  for (const t of targets) {
    const d = decideTarget(view, request, rule.action, t.kind, t.key, t.args);
    if (d.decision === "deny") return targets.length > 1 ? { ...d, reason: `${d.reason} (${KIND_WORDS[t.kind]} ${shown(t.key)})` } : d;
    last = d;
  }
  return last!;
}

/** Per bundle: `serverId\u0000normalizeUri(uri)` → the approved resource URIs with that normal form. */
const equivalence = new WeakMap<BundleContent, Map<string, string[]>>();

/** The approved resources of a server that `uri` names under URI normalization (lib/enforcement/catalogue-entry.ts normalizeUri). */
function equivalentResources(content: BundleContent, serverId: string, uri: string): string[] {
  let ix = equivalence.get(content);
  if (!ix) {
    ix = new Map();
    for (const e of content.catalogue) {
      if (e.kind !== "resource") continue;
      const k = `${e.serverId}\u0000${normalizeUri(e.name)}`;
      const list = ix.get(k);
      if (list) list.push(e.name);
      else ix.set(k, [e.name]);
    }
    equivalence.set(content, ix);
  }
  return ix.get(`${serverId}\u0000${normalizeUri(uri)}`) ?? [];
}

const LOGGING_REFUSED =
  "method logging/setLevel is not allowed through this agent: the server's upstreamLogging setting is off (an upstream's log messages can carry its own credentials and other callers' data)";

/** The kind words in reasons. */
const KIND_WORDS: Record<CatalogueKind, string> = { tool: "the tool", resource: "the resource", resourceTemplate: "the resource template", prompt: "the prompt" };

interface MethodRule {
  action: CedarAction;
  /** The catalogue kinds the method's name can name, in the order tried. */
  kinds: readonly CatalogueKind[];
  what: string;
  /** A list method: without a name it passes to its answer's filter. */
  list?: boolean;
  /** server/discover: passes, its answer filtered. */
  discover?: boolean;
  /** subscriptions/listen: its resource subscriptions are decided (decideListen). */
  listen?: boolean;
}

/**
 * The methods decided here, and what each is decided as (lib/enforcement/model.ts
 * ACTION_TARGETS). initialize, ping and notifications/* pass before this table;
 * anything not in it is denied at stage "method".
 */
const METHODS: ReadonlyMap<string, MethodRule> = new Map<string, MethodRule>([
  ["tools/call", { action: "call_tool", kinds: ["tool"], what: "the tool" }],
  ["tools/list", { action: "list_tools", kinds: ["tool"], what: "the tool", list: true }],
  ["resources/read", { action: "read_resource", kinds: ["resource"], what: "the resource" }],
  ["resources/subscribe", { action: "read_resource", kinds: ["resource"], what: "the resource" }],
  ["resources/unsubscribe", { action: "read_resource", kinds: ["resource"], what: "the resource" }],
  ["resources/list", { action: "list_resources", kinds: ["resource"], what: "the resource", list: true }],
  ["resources/templates/list", { action: "list_resource_templates", kinds: ["resourceTemplate"], what: "the resource template", list: true }],
  ["prompts/get", { action: "get_prompt", kinds: ["prompt"], what: "the prompt" }],
  ["prompts/list", { action: "list_prompts", kinds: ["prompt"], what: "the prompt", list: true }],
  ["completion/complete", { action: "complete", kinds: ["prompt", "resourceTemplate"], what: "the prompt or resource template" }],
  ["server/discover", { action: "list_tools", kinds: [], what: "", discover: true }],
  ["subscriptions/listen", { action: "read_resource", kinds: ["resource"], what: "the resource", listen: true }],
]);

/** The methods `decide()` knows (passthrough ones included), for documentation and tests. */
export const DECIDED_METHODS: readonly string[] = [...PASSTHROUGH_METHODS, "notifications/*", "logging/setLevel", ...METHODS.keys()];

/** The list method of each list kind. */
export const LIST_METHOD: Record<ListKind, string> = { tools: "tools/list", resources: "resources/list", resourceTemplates: "resources/templates/list", prompts: "prompts/list" };

/**
 * subscriptions/listen (2026-07-28): the list-changed notifications it asks
 * for carry no data and pass; every URI of `resourceSubscriptions` is decided
 * as resources/subscribe, and one denial denies the whole request.
 */
function decideListen(view: DecisionView, request: DecideRequest, live: LiveState): Decision {
  const raw = request.resourceSubscriptions;
  const uris = Array.isArray(raw) ? raw : [];
  if (uris.length > MAX_LISTEN_URIS) return deny("catalogue", `more than ${MAX_LISTEN_URIS} resource subscriptions`);
  const determining: string[] = [];
  for (const uri of uris) {
    if (!str(uri)) return deny("catalogue", "a resource subscription is not a URI");
    const d = decide(view, { ...request, method: "resources/subscribe", name: uri, tool: null, resourceSubscriptions: null, args: null }, live);
    if (d.decision === "deny") return { ...d, reason: `${d.reason} (subscription to ${shown(uri)})` };
    for (const id of d.determining) if (!determining.includes(id)) determining.push(id);
  }
  return allow("policy", uris.length ? `${uris.length} resource subscription${uris.length === 1 ? "" : "s"} allowed` : "no resource subscriptions", determining);
}

/** Most URIs one subscriptions/listen may subscribe to. */
export const MAX_LISTEN_URIS = 100;

/** Argument types, Cedar and approval for one catalogue entry. */
function decideTarget(view: DecisionView, request: DecideRequest, action: CedarAction, kind: CatalogueKind, tool: string, args: Record<string, unknown>): Decision {
  const p = request.principal;
  const serverId = request.serverId;
  const q: DecisionRequest = {
    action,
    serverId,
    tool,
    ...(kind === "tool" ? {} : { kind }),
    tenantId: p.tenantId,
    user: p.user,
    groups: strings(p.groups),
    client: p.client,
    scopes: strings(p.scopes),
    args,
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
  // Only tools/call waits for a person, and a listing is allowed; for a resource, template or prompt
  // read the approval forbid denies like any forbid (no approval flow covers them).
  if (action === "call_tool" || LIST_ACTIONS.has(action)) {
    const waiting = approvalStage(view, q, r, q.time!);
    if (waiting) return waiting;
  }
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

const LIST_ACTIONS: ReadonlySet<CedarAction> = new Set(["list_tools", "list_resources", "list_resource_templates", "list_prompts"]);

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
 * Filters a list answer (the `tools`, `resources`, `resourceTemplates` or
 * `prompts` of its result) with `decide()`: an item is kept when it is in the
 * approved catalogue (by name, URI or URI template), its live definition
 * hashes to the approved one (lib/enforcement/catalogue-entry.ts entryHash),
 * it is not known to have drifted, and Cedar allows the list action on it. A
 * revoked token or an unapproved client lists nothing.
 */
export function filterList<T>(view: DecisionView, request: Omit<DecideRequest, "method" | "tool" | "name" | "args">, kind: ListKind, items: readonly T[], live: LiveState = {}): ListFiltered<T> {
  const kept: T[] = [];
  const hidden: string[] = [];
  const changed: ListFiltered<T>["changed"] = [];
  const total = Array.isArray(items) ? items.length : 0;
  const entryKind: CatalogueKind | undefined = KIND_OF_FIELD[kind];
  const method = LIST_METHOD[kind];
  const noun = kind === "resourceTemplates" ? "resource templates" : kind;
  try {
    if (!entryKind || !method) return { kept, hidden, changed, record: deny("method", `listed 0 of ${total}: unknown list ${shown(String(kind))}`) };
    const base = { ...request, name: null, tool: null, args: null };
    const gate = decide(view, { ...base, method }, live);
    if (gate.decision === "deny") return { kept, hidden, changed, record: { ...gate, reason: `listed 0 of ${total} ${noun}: ${gate.reason}` } };
    const p = request.principal;
    const unapproved = unapprovedClient(view.content, p);
    if (unapproved) return { kept, hidden, changed, record: deny("client", `listed 0 of ${total} ${noun}: ${unapproved}`) };
    // The gate above took every check that does not depend on the entry (principal, revocation,
    // server and tenant, method, client). Per entry what `decide(view, { ...base, method, name }, live)`
    // adds is the catalogue (the name is a key of this kind, at most MAX_ENTRY_KEY: entryKey), drift
    // and decideTarget, taken here directly at one instant for the whole list
    // (test/decide-list-equivalence.test.ts holds it to the per-entry decide()).
    const action = METHODS.get(method)!.action;
    const at = { ...base, method, time: request.time instanceof Date && !Number.isNaN(request.time.getTime()) ? request.time : new Date() };
    // decideTarget's engine request, built once: per entry only the entry changes.
    const q: DecisionRequest = {
      action,
      serverId: request.serverId,
      tool: "",
      tenantId: p.tenantId,
      user: p.user,
      groups: strings(p.groups),
      client: p.client,
      scopes: strings(p.scopes),
      args: {},
      delegation: { actors: strings(p.actors) },
      time: at.time,
      ...(str(at.ip) ? { ip: at.ip } : {}),
      token: { iss: str(p.issuer) ? p.issuer : "", iat: num(p.iat), exp: num(p.exp) },
    };
    const drifted = live.drifted;
    const hashes = hashCacheOf(view.content);
    for (let i = 0; i < total; i++) {
      const t = items[i]!;
      const name = entryKey(entryKind, t);
      const approved = name !== null ? view.engine.entry(request.serverId, entryKind, name) : undefined;
      if (name === null || !approved) {
        const o = t && typeof t === "object" ? (t as Record<string, unknown>) : {};
        hidden.push(`${shown(String(name ?? (entryKind === "resource" ? o.uri : entryKind === "resourceTemplate" ? o.uriTemplate : o.name)))} (not approved)`);
        continue;
      }
      const hash = cachedEntryHash(hashes, entryKind, t);
      if (hash !== approved.hash) {
        changed.push({ serverId: request.serverId, kind, name, tool: name, live: hash, approved: approved.hash });
        hidden.push(`${shown(name)} (changed upstream)`);
        continue;
      }
      if (drifted && drifted.size > 0 && drifted.has(driftKey(request.serverId, kind, name))) {
        hidden.push(`${shown(name)} (changed upstream)`);
        continue;
      }
      let allowed = false;
      try {
        allowed = listAllows(view, entryKind === "tool" ? { ...q, tool: name } : { ...q, tool: name, kind: entryKind });
      } catch {
        allowed = false; // as decide(): anything unexpected denies
      }
      if (allowed) kept.push(t);
      else hidden.push(`${shown(name)} (not allowed)`);
    }
  } catch {
    return { kept: [], hidden: [], changed, record: deny("error", `listed 0 of ${total} ${noun}: the list could not be evaluated`) };
  }
  return { kept, hidden, changed, record: allow("list", `listed ${kept.length} of ${total} ${noun}${hidden.length ? `; hidden: ${hidden.join(", ")}` : ""}`) };
}

/**
 * decideTarget for a list action, allow or not: Cedar, not remembered in the engine's memo (each
 * entry is decided once per list), then the approval stage (a listing denied only by `@approval`
 * forbids is allowed). A list action has no arguments and no step-up.
 */
function listAllows(view: DecisionView, q: DecisionRequest): boolean {
  const r = view.engine.decide(q, undefined, false);
  if (r.decision === "allow") return true;
  return approvalStage(view, q, r, q.time!)?.decision === "allow";
}

/**
 * Per bundle content: `kind NUL JSON text of a listed item` → its entryHash. The agent parses every
 * list answer anew, so the key is the item's JSON text (what the agent sends on), and the hash is
 * taken of that text parsed again: the hash of exactly what the client receives. Dropped with the
 * bundle (a new content object); bounded in entries and characters (cleared when full).
 */
const listHashes = new WeakMap<BundleContent, { map: Map<string, string>; chars: number }>();
const MAX_LIST_HASHES = 20_000;
const MAX_LIST_HASH_CHARS = 16_000_000;
/** Items longer than this are hashed afresh, never remembered. */
const MAX_LIST_HASH_ITEM = 65_536;

function hashCacheOf(content: BundleContent): { map: Map<string, string>; chars: number } {
  let c = listHashes.get(content);
  if (!c) listHashes.set(content, (c = { map: new Map(), chars: 0 }));
  return c;
}

/** entryHash of a listed item through the per-bundle cache; "" (changed) when it cannot be hashed. */
function cachedEntryHash(cache: { map: Map<string, string>; chars: number }, kind: CatalogueKind, item: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(item);
  } catch {
    text = undefined;
  }
  if (text === undefined || text.length > MAX_LIST_HASH_ITEM) {
    try {
      return entryHash(kind, item);
    } catch {
      return "";
    }
  }
  const key = `${kind}\u0000${text}`;
  const hit = cache.map.get(key);
  if (hit !== undefined) return hit;
  let hash: string;
  try {
    hash = entryHash(kind, JSON.parse(text));
  } catch {
    hash = "";
  }
  if (cache.map.size >= MAX_LIST_HASHES || cache.chars + key.length > MAX_LIST_HASH_CHARS) {
    cache.map.clear();
    cache.chars = 0;
  }
  cache.map.set(key, hash);
  cache.chars += key.length;
  return hash;
}

/** The tools/list answer filter: `filterList(view, request, "tools", tools, live)`. */
export function listFilter<T extends Partial<ToolDefinition>>(
  view: DecisionView,
  request: Omit<DecideRequest, "method" | "tool" | "name" | "args">,
  tools: readonly T[],
  live: LiveState = {},
): ListFiltered<T> {
  return filterList(view, request, "tools", tools, live);
}

/** Stages whose denial does not depend on the body's arguments. */
const ARGS_FREE_STAGES: ReadonlySet<DecisionStage> = new Set(["revoked", "server", "method", "client", "catalogue", "drift", "error"]);

/**
 * A decision taken on the request's method and name alone (the 2026-07-28
 * `Mcp-Method` and `Mcp-Name` headers), before the body is parsed: `final` is
 * the decision `decide()` takes whatever the body's arguments are, or null
 * when the arguments are needed. Final are: a denial at revocation, server,
 * method, client approval, catalogue or drift; passthrough and list methods;
 * and Cedar's answer when no policy that can apply to the named entry may
 * read `context.args` (lib/enforcement/engine.ts mayReadArgs): then a denial
 * holds, and an allow holds when the server's policies type no argument of
 * this action (a body could otherwise be denied for an argument of the wrong
 * type). A resource read through a template takes its arguments from the URI,
 * never the body, so its answer is final. Anything else (an approval wait,
 * subscriptions/listen, whose URIs are in the body) is null: the body decides.
 * It never allows what `decide()` with the body would deny (test/decide-headers.test.ts).
 */
export function decideOnHeaders(view: DecisionView, request: Omit<DecideRequest, "args">, live: LiveState = {}): { final: Decision } | { final: null } {
  try {
    const method = request?.method;
    const d = decide(view, { ...request, args: {} }, live);
    if (d.decision === "deny" && ARGS_FREE_STAGES.has(d.stage)) return { final: d };
    if (d.stage === "passthrough" || d.stage === "list") return { final: d };
    const rule = str(method) ? METHODS.get(method) : undefined;
    if (!rule || rule.listen || d.stage === "approval" || d.stage === "arguments") return { final: null };
    const name = str(request.name) ? request.name : str(request.tool) ? request.tool : "";
    const engine = view.engine;
    const serverId = request.serverId;
    const tenantId = request.principal.tenantId;
    if (rule.action === "call_tool" || rule.action === "get_prompt" || rule.action === "complete") {
      // The entries the body's arguments reach: those of this name (completion: whichever kind the body names).
      let kinds = rule.kinds;
      if (method === "completion/complete" && (request.completionRef === "ref/prompt" || request.completionRef === "ref/resource"))
        kinds = [request.completionRef === "ref/prompt" ? "prompt" : "resourceTemplate"];
      for (const k of kinds) if (engine.entry(serverId, k, name) && engine.mayReadArgs(serverId, tenantId, name, k)) return { final: null };
      if (d.decision === "allow" && engine.typesArguments(serverId, rule.action)) return { final: null };
    }
    return { final: d };
  } catch {
    return { final: deny("error", "the request could not be evaluated") };
  }
}

/**
 * The control plane's drift set for one bundle: approved entries whose latest
 * known version (`driftKey()` → hash, from the catalogue in the database)
 * differs from the hash the bundle approved, as an agent would find upstream.
 */
export function driftedAgainst(content: BundleContent, latest: ReadonlyMap<string, string>): Set<string> {
  const out = new Set<string>();
  for (const t of content.catalogue) {
    const key = driftKey(t.serverId, LIST_FIELD[t.kind ?? "tool"], t.name);
    const h = latest.get(key);
    if (h !== undefined && h !== t.hash) out.add(key);
  }
  return out;
}

/**
 * The agent's drift check for one server (agent/drift.ts calls it with what
 * `fetchUpstreamCatalogue` lists): every approved entry of the bundle whose
 * live definition hashes differently from the approved one. Entries the
 * upstream no longer lists are not reported (the upstream cannot serve them).
 * Returns the `driftKey()`s to add to `LiveState.drifted`, with both hashes
 * for the log. Kinds the listing lacks (undefined) are not checked.
 */
export function liveDrift(
  view: DecisionView,
  serverId: string,
  listing: Partial<Record<ListKind, readonly unknown[]>>,
): { key: string; kind: ListKind; name: string; live: string; approved: string }[] {
  const out: { key: string; kind: ListKind; name: string; live: string; approved: string }[] = [];
  for (const kind of LIST_KINDS) {
    const items = listing[kind];
    if (!Array.isArray(items)) continue;
    const entryKind = KIND_OF_FIELD[kind];
    for (const item of items) {
      const name = entryKey(entryKind, item);
      const approved = name === null ? undefined : view.engine.entry(serverId, entryKind, name);
      if (!approved || name === null) continue;
      let hash: string;
      try {
        hash = entryHash(entryKind, item);
      } catch {
        hash = "";
      }
      if (hash !== approved.hash) out.push({ key: driftKey(serverId, kind, name), kind, name, live: hash, approved: approved.hash });
    }
  }
  return out;
}
