import { createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import type { BundleContent, BundleTool } from "./bundle";
import { cedar } from "./cedar";
import { compileSlice, evaluateSlice, PreparedRequest, type AuthorizationCall, type JsSlice } from "./cedar-js";
import type { CatalogueKind } from "./catalogue-entry";
import { argumentTypesByServer, entryUid, stringArgumentsByServer, type ArgType, type CedarAction } from "./model";

/** One request to decide: who, through which client, calls what, with which arguments. */
export interface DecisionRequest {
  action: CedarAction;
  serverId: string;
  /** The catalogue entry's key (tool or prompt name, resource URI, URI template). */
  tool: string;
  /** The entry's kind (absent: a tool). */
  kind?: CatalogueKind;
  tenantId: string;
  user: string;
  groups?: string[];
  client: string;
  scopes: string[];
  args?: Record<string, unknown>;
  delegation?: { actors: string[] };
  time?: Date;
  ip?: string;
  token?: { iss: string; iat: number; exp: number };
}

export interface DecisionResult {
  decision: "allow" | "deny";
  /** Why, in words an admin can read (never internals of the token). */
  reason: string;
  /** Policy ids that determined the answer (the permits that allowed, or the forbids that denied). */
  determining: string[];
  /** Policy ids that failed to evaluate; any error denies. */
  errors: string[];
  /** Set when an argument of the wrong type denied the call before Cedar ran. */
  argument?: string;
}

const deny = (reason: string, extra: Partial<DecisionResult> = {}): DecisionResult => ({ decision: "deny", reason, determining: [], errors: [], ...extra });

// Node 20's V8 (Node 20.20.2 here) can abort the whole process ("unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when optimized code with the cedar-wasm glue inlined
// is lazily deoptimized: reproduced 3 times out of 3 replaying 200,000 decisions interleaved with
// database reads (bench/impact.ts with the memo off), 0 out of 2 with TurboFan inlining off. An
// agent or control plane that dies mid-decision fails closed but stops serving, so every process
// that decides turns inlining off, before its hot code is optimized. Cost measured with
// bench/decision.ts (docs/masking-impact.md); drop this once Node has a fixed V8.
setFlagsFromString("--no-turbo-inlining");

/**
 * Preparsed policy sets live in cedar-wasm for the life of the process (it has
 * no call to free one). They are named by the SHA-256 of their policies, so
 * every engine with the same slice (the control plane builds one per
 * simulation, test run and draft view; agents one per policy revision) shares
 * one entry, and the set grows only with distinct policy text.
 */
const preparsed = new Set<string>();

/** How many distinct policy sets this process has preparsed (a metric, and for tests). */
export const preparsedPolicySets = () => preparsed.size;

/**
 * The decision engine for one verified bundle. Policies are parsed once per
 * (server, tenant, tool) slice, on first use (cedar-wasm `preparsePolicySet`):
 * a decision evaluates only the policies that can apply to its tool, and
 * converts only the request's own entities and context. Slicing is sound
 * because the compiler confines every policy to its server and tenant and
 * records the tools it can match. Default deny, and fail closed: an unknown
 * server, tenant or tool, an argument of the wrong type, or any policy
 * evaluation error denies.
 */
/** Most decisions one engine remembers (least recently used forgotten first). */
export const MAX_MEMO_ENTRIES = 5_000;
/** A request whose memo key is longer than this (large arguments) is decided afresh, never remembered. */
export const MAX_MEMO_KEY_CHARS = 2_048;

export class PolicyEngine {
  private readonly slices = new Map<string, string>();
  /**
   * Per preparsed set id: its policies compiled for the JS evaluator (lib/enforcement/cedar-js.ts),
   * or null when one is outside its subset (cedar-wasm decides that slice). Off with
   * MANDATE_CEDAR_JS=0 or `jsEvaluator = false` (benches compare both).
   */
  private readonly jsSlices = new Map<string, JsSlice | null>();
  /** Slices the JS evaluator takes, not yet preparsed in cedar-wasm (until a request it declines). */
  private readonly unparsed = new Map<string, Record<string, string>>();
  jsEvaluator = process.env.MANDATE_CEDAR_JS !== "0";
  /** The JS evaluator's conversion of the last request's context and principal (a list reuses it for every entry). */
  private readonly prepared = new PreparedRequest();
  /**
   * Decisions by exactly what Cedar is given: the request's principal, action,
   * resource, typed arguments and context (time to the second). The entities
   * and policies are this engine's bundle's, so the memo lives and dies with
   * the engine (a new bundle is a new engine). Bounded LRU.
   */
  private readonly memo = new Map<string, DecisionResult>();
  private readonly servers: Map<string, BundleContent["servers"][number]>;
  private readonly tools: Map<string, BundleTool>;
  /** Per server: argument name → the type its policies read it as (a Map: names come from users). */
  private readonly argTypes: Map<string, Map<string, ArgType>>;
  /** Per server: the string arguments of prompts and template variables (read_resource, get_prompt, complete). */
  private readonly stringArgs: Map<string, Set<string>>;
  /** Per server: its approved resource templates (a URI that is no approved resource is read through them). */
  private readonly templates: Map<string, BundleTool[]>;
  /** Per slice key: whether a policy of that slice may read `context.args` (lib/enforcement/decide.ts decideOnHeaders). */
  private readonly argReaders = new Map<string, boolean>();
  private readonly staticEntities: Map<string, BundleContent["cedar"]["entities"][number]>;

  constructor(readonly bundle: BundleContent) {
    // Parse everything once up front: a bundle that does not parse is refused here, not at the first call.
    const parsed = cedar.checkParsePolicySet({ staticPolicies: bundle.cedar.policies });
    if (parsed.type !== "success") throw new Error(`policy set does not parse: ${parsed.errors.map((e) => e.message).join("; ")}`);
    this.servers = new Map(bundle.servers.map((s) => [s.id, s]));
    this.tools = new Map(bundle.catalogue.map((t) => [entryKeyOf(t.kind ?? "tool", t.serverId, t.name), t]));
    this.argTypes = new Map();
    const byServer = argumentTypesByServer(bundle.catalogue);
    for (const [serverId, a] of byServer) this.argTypes.set(serverId, a.types);
    this.stringArgs = new Map();
    for (const [serverId, names] of stringArgumentsByServer(bundle.catalogue, byServer)) this.stringArgs.set(serverId, new Set(names));
    this.templates = new Map();
    for (const t of bundle.catalogue) {
      if (t.kind !== "resourceTemplate") continue;
      const list = this.templates.get(t.serverId);
      if (list) list.push(t);
      else this.templates.set(t.serverId, [t]);
    }
    this.staticEntities = new Map(bundle.cedar.entities.map((e) => [`${e.uid.type}::${e.uid.id}`, e]));
  }

  /**
   * The policies that can apply to one (server, tenant, entry). A policy whose metadata lists
   * tools requires the resource to be one of those Tool entities, so it applies to no entry of
   * another kind. Unknown metadata: the policy is kept (never drop a forbid by accident).
   */
  private policiesFor(serverId: string, tenantId: string, tool: string, kind: CatalogueKind, without?: readonly string[]): Record<string, string> {
    const policies: Record<string, string> = {};
    for (const [pid, text] of Object.entries(this.bundle.cedar.policies)) {
      const m = this.bundle.policies[pid];
      if (m && (m.serverId !== serverId || (m.tenantId !== null && m.tenantId !== tenantId) || (m.tools && (kind !== "tool" || !m.tools.includes(tool))))) continue;
      if (without?.includes(pid)) continue;
      policies[pid] = text;
    }
    return policies;
  }

  /**
   * Whether a policy that can apply to this (server, tenant, entry) may read `context.args`:
   * conservatively, any policy that names `args` anywhere or reads `context` other than through
   * one of its other attributes. False means every answer is the same whatever the arguments.
   */
  mayReadArgs(serverId: string, tenantId: string, tool: string, kind: CatalogueKind = "tool"): boolean {
    const key = `${kind}\u0000${serverId}\u0000${tenantId}\u0000${tool}`;
    const known = this.argReaders.get(key);
    if (known !== undefined) return known;
    let reads = false;
    for (const text of Object.values(this.policiesFor(serverId, tenantId, tool, kind))) {
      if (/args/.test(text) || /\bcontext\b/.test(text.replace(/\bcontext\s*\.\s*(scopes|client|tenant|delegation|time|network|token)\b/g, ""))) {
        reads = true;
        break;
      }
    }
    this.argReaders.set(key, reads);
    return reads;
  }

  /**
   * Whether any policy of this (server, tenant), whatever entry it names, may read the clock or the
   * caller's address (`context.time`, `context.network`): conservatively, any policy whose text
   * names `time`, `network` or `ip` anywhere, or reads `context` other than through one of its
   * other attributes. False means every decision for this server and tenant is the same at any
   * instant and from any address (agent/list-memo.ts remembers whole lists only then).
   */
  readsClockOrAddress(serverId: string, tenantId: string): boolean {
    const key = `\u0001${serverId}\u0000${tenantId}`;
    const known = this.argReaders.get(key);
    if (known !== undefined) return known;
    let reads = false;
    for (const [pid, text] of Object.entries(this.bundle.cedar.policies)) {
      const m = this.bundle.policies[pid];
      if (m && (m.serverId !== serverId || (m.tenantId !== null && m.tenantId !== tenantId))) continue;
      if (/time|network|\bip\b/.test(text) || /\bcontext\b/.test(text.replace(/\bcontext\s*\.\s*(args|scopes|client|tenant|delegation|token)\b/g, ""))) {
        reads = true;
        break;
      }
    }
    this.argReaders.set(key, reads);
    return reads;
  }

  /** The preparsed policy set for one (server, tenant, entry), built on first use. */
  private slice(serverId: string, tenantId: string, tool: string, without?: readonly string[], kind: CatalogueKind = "tool"): string {
    const key = `${kind === "tool" ? "" : `${kind}\u0000`}${serverId}\u0000${tenantId}\u0000${tool}${without?.length ? `\u0000${without.join("\u0000")}` : ""}`;
    let id = this.slices.get(key);
    if (id) return id;
    const policies = this.policiesFor(serverId, tenantId, tool, kind, without);
    id = `ps-${createHash("sha256")
      .update(JSON.stringify(Object.entries(policies)))
      .digest("hex")}`;
    const js = this.jsEvaluator ? (this.jsSlices.has(id) ? this.jsSlices.get(id)! : jsSliceOf(policies)) : null;
    if (this.jsEvaluator) this.jsSlices.set(id, js);
    // A slice the JS evaluator takes is parsed by cedar-wasm only when a request goes there (authorize).
    if (js && !preparsed.has(id)) this.unparsed.set(id, policies);
    else preparse(id, policies);
    this.slices.set(key, id);
    return id;
  }

  /** The approved catalogue entry of a tool, if the bundle has it. */
  tool(serverId: string, name: string): BundleTool | undefined {
    return this.tools.get(`${serverId}/${name}`);
  }

  /** The approved catalogue entry of any kind, if the bundle has it. */
  entry(serverId: string, kind: CatalogueKind, name: string): BundleTool | undefined {
    return this.tools.get(entryKeyOf(kind, serverId, name));
  }

  /** The approved resource templates of a server. */
  templatesOf(serverId: string): readonly BundleTool[] {
    return this.templates.get(serverId) ?? [];
  }

  /** Whether this server's policies can type any argument of this action (a body could then be denied for a wrong type). */
  typesArguments(serverId: string, action: CedarAction): boolean {
    if (action === "call_tool") return (this.argTypes.get(serverId)?.size ?? 0) > 0;
    if (action === "read_resource" || action === "get_prompt" || action === "complete") return (this.stringArgs.get(serverId)?.size ?? 0) > 0;
    return false;
  }

  /**
   * Decides one request. `without`: policy ids left out of this evaluation (the approval stage
   * asks whether anything but its `@approval` forbids denies: lib/enforcement/approval.ts).
   * `remember` false: neither looked up in nor added to the memo (a list decides each of its
   * entries once: lib/enforcement/decide.ts filterList; remembering them would push out calls).
   */
  decide(req: DecisionRequest, without?: readonly string[], remember = true): DecisionResult {
    const server = this.servers.get(req.serverId);
    if (!server) return deny("unknown server");
    if (!server.tenantIds.includes(req.tenantId)) return deny("this tenant may not use this server");
    const kind = req.kind ?? "tool";
    const tool = this.tools.get(entryKeyOf(kind, req.serverId, req.tool));
    if (!tool) return deny(kind === "tool" ? "the tool is not in the approved catalogue" : "not in the approved catalogue");

    // Plain loops, no callback builtins (map, every, Object.entries) in this hot path: Node 20's V8
    // (20.20.2) can die with "unreachable code" in Deoptimizer::DoComputeBuiltinContinuation when a
    // lazily deoptimized decide() is inside an inlined callback builtin (seen replaying 100,000
    // decisions interleaved with database reads; see docs/masking-impact.md).
    // Null prototype, own keys only: an argument named __proto__, constructor or toString is
    // an ordinary name, typed by its own server's tools (per-server types: no other server's
    // same-named argument can change how this one is read).
    const args: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    const given = req.args ?? {};
    // Tool actions type by the tools' schemas; prompts and templates carry strings; list actions of other kinds, nothing.
    const strings = req.action === "read_resource" || req.action === "get_prompt" || req.action === "complete" ? this.stringArgs.get(req.serverId) : undefined;
    const types = req.action === "call_tool" || req.action === "list_tools" ? this.argTypes.get(req.serverId) : undefined;
    const names = Object.keys(given);
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const value = given[name];
      const type: ArgType | undefined = strings ? (strings.has(name) ? "String" : undefined) : types?.get(name);
      // Not addressable by any policy, or explicitly absent.
      if (!type || value === null) continue;
      const converted = convert(value, type);
      if (converted === undefined) return deny(`argument "${name.length > 100 ? `${name.slice(0, 100)}…` : name}" does not have the type policies expect (${type})`, { argument: name });
      Object.defineProperty(args, name, { value: converted, enumerable: true, configurable: true, writable: true });
    }
    const now = req.time ?? new Date();
    const epoch = Math.floor(now.getTime() / 1000);
    // Everything below is a function of these inputs alone (Cedar is deterministic, the bundle fixed).
    const memoKey = remember
      ? JSON.stringify([
          req.action,
          kind,
          req.serverId,
          req.tool,
          req.tenantId,
          req.user,
          req.groups ?? [],
          req.client,
          req.scopes,
          args,
          req.delegation?.actors ?? [],
          epoch,
          req.ip ?? "",
          req.token ?? null,
          without ?? [],
        ])
      : "";
    const cacheable = remember && memoKey.length <= MAX_MEMO_KEY_CHARS;
    if (cacheable) {
      const hit = this.memo.get(memoKey);
      if (hit) {
        this.memo.delete(memoKey);
        this.memo.set(memoKey, hit);
        return { ...hit, determining: [...hit.determining], errors: [...hit.errors] };
      }
    }
    const result = this.evaluate(req, args, now, epoch, without);
    if (cacheable) {
      if (this.memo.size >= MAX_MEMO_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
      this.memo.set(memoKey, { ...result, determining: [...result.determining], errors: [...result.errors] });
    }
    return result;
  }

  /** Decisions remembered (for tests and metrics). */
  get memoSize(): number {
    return this.memo.size;
  }

  /** Forgets every remembered decision (a new bundle that keeps this engine: every cache goes with a bundle change). */
  forgetDecisions(): void {
    this.memo.clear();
  }

  /**
   * Parses every (server, tenant, tool) slice ahead of its first call, one
   * per turn of the event loop (requests keep being served in between);
   * stops as soon as `stop()` answers true. A slice that does not parse is
   * left for its call, which then denies. Returns how many were prepared.
   */
  async prepareAll(stop: () => boolean = () => false): Promise<number> {
    let n = 0;
    for (const s of this.bundle.servers)
      for (const tenantId of s.tenantIds)
        for (const t of this.bundle.catalogue) {
          if (t.serverId !== s.id) continue;
          if (stop()) return n;
          try {
            this.slice(s.id, tenantId, t.name, undefined, t.kind ?? "tool");
            n++;
          } catch {
            // decided (denied) at call time
          }
          await new Promise((r) => setImmediate(r));
        }
    return n;
  }

  /**
   * cedar-wasm's `statefulIsAuthorized`, or the same answer from the JS evaluator when the
   * slice is inside its subset and the request holds nothing it is unsure of. Policy ids in
   * the answer are sorted (cedar-wasm gives them in no set order).
   */
  private authorize(call: Parameters<typeof cedar.statefulIsAuthorized>[0]): ReturnType<typeof cedar.statefulIsAuthorized> {
    const id = call.preparsedPolicySetId;
    const js = this.jsEvaluator ? this.jsSlices.get(id) : undefined;
    if (js) {
      const answer = evaluateSlice(js, call as unknown as AuthorizationCall, this.prepared);
      if (answer) return answer as unknown as ReturnType<typeof cedar.statefulIsAuthorized>;
    }
    const policies = this.unparsed.get(id);
    if (policies) {
      preparse(id, policies);
      this.unparsed.delete(id);
    }
    const answer = cedar.statefulIsAuthorized(call);
    if (answer.type === "success") {
      answer.response.diagnostics.reason.sort();
      answer.response.diagnostics.errors.sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0));
    }
    return answer;
  }

  private evaluate(req: DecisionRequest, args: Record<string, unknown>, now: Date, epoch: number, without?: readonly string[]): DecisionResult {
    const tenant = { type: "Tenant", id: req.tenantId };
    const kind = req.kind ?? "tool";
    const resource = entryUid(kind, req.serverId, req.tool);
    const userParents: { type: string; id: string }[] = [tenant];
    const entities: unknown[] = [];
    for (const g of req.groups ?? []) {
      const uid = { type: "Group", id: g };
      userParents.push(uid);
      entities.push({ uid, attrs: {}, parents: [tenant] });
    }
    entities.push(
      { uid: { type: "User", id: req.user }, attrs: userAttrs(req.user), parents: userParents },
      this.staticEntities.get(`${resource.type}::${resource.id}`)!,
      this.staticEntities.get(`Server::${req.serverId}`)!,
    );
    const answer = this.authorize({
      principal: { type: "User", id: req.user },
      action: { type: "Action", id: req.action },
      resource,
      context: {
        args: args as never,
        scopes: req.scopes,
        client: req.client,
        tenant: req.tenantId,
        delegation: { actors: req.delegation?.actors ?? [], depth: req.delegation?.actors.length ?? 0 },
        time: { epoch, hour: now.getUTCHours(), weekday: now.getUTCDay() },
        network: req.ip ? { ip: req.ip } : {},
        token: req.token ?? { iss: "", iat: 0, exp: 0 },
      },
      preparsedPolicySetId: this.slice(req.serverId, req.tenantId, req.tool, without, kind),
      entities: entities as never,
    });
    if (answer.type !== "success") return deny("the request could not be evaluated");
    const { decision, diagnostics } = answer.response;
    const errors: string[] = [];
    for (const e of diagnostics.errors) errors.push(e.policyId);
    if (errors.length) return deny("a policy failed to evaluate", { errors, determining: diagnostics.reason });
    if (decision === "allow") return { decision: "allow", reason: "allowed by policy", determining: diagnostics.reason, errors: [] };
    return deny(diagnostics.reason.length ? "denied by policy" : "no policy allows this call", { determining: diagnostics.reason });
  }
}

/** The key of a catalogue entry in the engine's map (tools keep `serverId/name`). */
const entryKeyOf = (kind: CatalogueKind, serverId: string, name: string) => (kind === "tool" ? `${serverId}/${name}` : `${kind}\u0000${serverId}/${name}`);

/** Preparses a slice in cedar-wasm once per process (sets are shared by content); throws when it does not parse. */
function preparse(id: string, policies: Record<string, string>): void {
  if (preparsed.has(id)) return;
  const parsed = cedar.preparsePolicySet(id, { staticPolicies: policies });
  if (parsed.type !== "success") throw new Error(`policy set does not parse: ${parsed.errors.map((e) => e.message).join("; ")}`);
  preparsed.add(id);
}

/** A slice compiled for the JS evaluator; null (cedar-wasm decides it) when outside its subset or on any surprise. */
function jsSliceOf(policies: Record<string, string>): JsSlice | null {
  try {
    return compileSlice(policies);
  } catch {
    return null;
  }
}

function convert(value: unknown, type: ArgType): unknown {
  switch (type) {
    case "String":
      return typeof value === "string" ? value : undefined;
    case "Bool":
      return typeof value === "boolean" ? value : undefined;
    case "Long":
      return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
    case "SetString": {
      if (!Array.isArray(value)) return undefined;
      for (const v of value) if (typeof v !== "string") return undefined;
      return value;
    }
  }
}

/**
 * The two parts of a user id `<issuer>#<subject>` (an issuer identifier has no fragment, so the
 * first `#` separates them); a bare id (the simulator, older callers) is a subject with no issuer.
 */
export function userAttrs(user: string): { sub: string; iss: string } {
  const i = user.indexOf("#");
  return i < 0 ? { sub: user, iss: "" } : { sub: user.slice(i + 1), iss: user.slice(0, i) };
}
