import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { PolicyTestRequest, RiskLevel } from "@/db/schema";
import { approverGroups } from "@/lib/enforcement/approval";
import { BUNDLE_FORMAT, type BundleContent, type BundlePolicyMeta, type BundleServer, type BundleTool } from "@/lib/enforcement/bundle";
import { cedar } from "@/lib/enforcement/cedar";
import { PolicyEngine, type DecisionResult } from "@/lib/enforcement/engine";
import { ENTITY_TYPE, type CatalogueKind } from "@/lib/enforcement/catalogue-entry";
import { argumentTypes, argumentTypesByServer, cedarSchema, entityAttrs, entryUid, stringArgumentsByServer } from "@/lib/enforcement/model";
import { confine, entityRefs, policyJsonProblems, splitPolicies, toJson, toolsOf, validatePolicies, type CedarIssue } from "@/lib/policy/cedar-tools";

import type { LiveSections } from "./live";

/**
 * Cedar's text → JSON and JSON → confined text conversions (cedar-wasm, ~⅔ of a large compile)
 * remembered across compiles in this process, keyed by the exact policy text (and the tenants and
 * server it is confined to): the control plane recompiles on every change and most policies are
 * unchanged. Pure functions of their key; bounded (cleared when full); failures are not remembered.
 * The JSON is frozen: no caller can change what another compile reads.
 */
const jsonMemo = new Map<string, ReturnType<typeof toJson>>();
const confinedMemo = new Map<string, string>();
const MAX_MEMO = 20_000;
/** Texts longer than this are converted afresh. */
const MAX_MEMO_TEXT = 20_000;

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
  }
  return v;
}

/**
 * A store of conversions kept across processes (lib/bundles/conversions.ts keeps it in the database
 * beside the policies it is derived from): the first compile of a process reads them instead of
 * converting every policy again. Every key is a SHA-256 of exactly the inputs of its value: the kind
 * of conversion, the converter (cedar-wasm's version and this module's confinement code), the
 * policy text, and for a confined text its tenants and server, for a validation the schema. A changed
 * input is another key: a stored value is never used for another policy, tenant, server, schema or
 * converter. A value that does not read back as what it was is a miss (converted afresh).
 */
export interface ConversionStore {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

/** What the stored conversions are a function of besides their own inputs: the converter itself. */
const CONVERTER = createHash("sha256")
  .update(JSON.stringify(["mandate-conversions/1", cedar.getCedarVersion(), confine.toString()]))
  .digest("hex");

export const conversionKey = (kind: "json" | "confined" | "valid", ...inputs: unknown[]): string =>
  `${kind}:${createHash("sha256")
    .update(JSON.stringify([CONVERTER, kind, ...inputs]))
    .digest("base64url")}`;

/** Keeps the JSON of a policy in the store, when its JSON text reads back as the very same value (no undefined, Map or non-finite number in it). */
function storeJson(store: ConversionStore, key: string, json: ReturnType<typeof toJson>) {
  const out = JSON.stringify(json);
  if (isDeepStrictEqual(JSON.parse(out), json)) store.set(key, out);
}

function readJson(stored: string | undefined): ReturnType<typeof toJson> | undefined {
  if (stored === undefined) return undefined;
  try {
    const v = JSON.parse(stored) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? deepFreeze(v as ReturnType<typeof toJson>) : undefined;
  } catch {
    return undefined;
  }
}

// With a store, a conversion found in this process's memo is still looked up (and added when
// missing): the store learns exactly the set a compile uses (lib/bundles/conversions.ts keeps that set).
function toJsonOnce(text: string, store?: ConversionStore): ReturnType<typeof toJson> {
  const key = store ? conversionKey("json", text) : "";
  const hit = jsonMemo.get(text);
  if (hit) {
    if (store && store.get(key) === undefined) storeJson(store, key, hit);
    return hit;
  }
  let json = readJson(store?.get(key));
  if (!json) {
    json = deepFreeze(toJson(text));
    if (store) storeJson(store, key, json);
  }
  if (text.length <= MAX_MEMO_TEXT) {
    if (jsonMemo.size >= MAX_MEMO) jsonMemo.clear();
    jsonMemo.set(text, json);
  }
  return json;
}

/** confine() of the JSON of `text` (json must be toJsonOnce(text)). */
function confineOnce(text: string, json: ReturnType<typeof toJson>, tenantIds: string[], serverId: string, store?: ConversionStore): string {
  const storeKey = store ? conversionKey("confined", tenantIds, serverId, text) : "";
  const key = JSON.stringify([tenantIds, serverId, text]);
  const hit = confinedMemo.get(key);
  const stored = store?.get(storeKey);
  const out = hit ?? stored ?? confine(json, tenantIds, serverId);
  if (store && stored === undefined) store.set(storeKey, out);
  if (hit === undefined && text.length <= MAX_MEMO_TEXT) {
    if (confinedMemo.size >= MAX_MEMO) confinedMemo.clear();
    confinedMemo.set(key, out);
  }
  return out;
}

/**
 * Confined texts that passed strict validation without an error or warning, by schema and text. Cedar
 * validates each policy on its own against the schema (no check spans two policies), so a text that
 * passed under a schema passes again under the same schema; failures are never remembered.
 */
const validMemo = new Set<string>();
function rememberValid(key: string) {
  if (validMemo.size >= MAX_MEMO) validMemo.clear();
  validMemo.add(key);
}

export const COMPILER_VERSION = "mandate-compiler/1";

/** What the compiler reads: a consistent snapshot of the registry for a set of servers. */
export interface RegistrySnapshot {
  servers: (Omit<BundleServer, "prm" | "trust"> & {
    prm: BundleServer["prm"];
    /** The trust entries of the server's tenants (none: no token is accepted). */
    trust?: BundleServer["trust"];
    /** The catalogue: tools, and (with `kind`) resources, resource templates and prompts; `name` is the entry's key (lib/enforcement/catalogue-entry.ts). */
    tools: {
      kind?: CatalogueKind;
      name: string;
      risk: RiskLevel;
      blocked: boolean;
      approved: {
        hash: string;
        title: string | null;
        description: string;
        annotations: Record<string, unknown>;
        inputSchema: Record<string, unknown>;
        label?: string;
        mimeType?: string | null;
      } | null;
    }[];
    mapping: Record<string, string[]>;
  })[];
  policies: { id: string; tenantId: string; serverId: string; name: string; kind: "rule" | "cedar"; cedar: string; enabled: boolean }[];
  tests: { id: string; tenantId: string; serverId: string; name: string; request: PolicyTestRequest; expected: "allow" | "deny" }[];
  /** Revocations, client approval, credential versions and masking, as they stand (lib/bundles/live.ts). */
  live?: LiveSections;
}

export interface CompileIssue extends CedarIssue {
  /** The admin's policy id (pol_…) and name, when the problem is in one. */
  policy?: { id: string; name: string };
}

export interface TestResult {
  id: string;
  name: string;
  tenantId: string;
  serverId: string;
  expected: "allow" | "deny";
  actual: "allow" | "deny" | "not_run";
  passed: boolean;
  result?: DecisionResult;
}

export interface CompileResult {
  content: BundleContent;
  issues: CompileIssue[];
  warnings: string[];
  tests: TestResult[];
}

/** Catalogue entity types a policy may name, and the word for each in messages. */
const CATALOGUE_TYPES: ReadonlyMap<string, string> = new Map([
  ["Tool", "tool"],
  ["Resource", "resource"],
  ["ResourceTemplate", "resource template"],
  ["Prompt", "prompt"],
]);

/**
 * Compiles a snapshot into bundle content, collecting every problem at once:
 * Cedar that does not parse or validate against the generated schema, a
 * policy naming an unknown tool, server or another tenant, and failing tests.
 * Pure: no database, no clock except `createdAt` passed in.
 */
export function compileBundle(
  snap: RegistrySnapshot,
  manifest: { fleetId: string; revision: number; parentRevision: number | null; createdAt: string },
  opts: { store?: ConversionStore } = {},
): CompileResult {
  const store = opts.store;
  const issues: CompileIssue[] = [];
  const warnings: string[] = [];
  const catalogue: BundleTool[] = [];
  const entities: BundleContent["cedar"]["entities"] = [];
  const policies: Record<string, string> = {};
  const meta: Record<string, BundlePolicyMeta> = {};
  const serverById = new Map(snap.servers.map((s) => [s.id, s]));

  for (const s of [...snap.servers].sort((a, b) => a.id.localeCompare(b.id))) {
    entities.push({ uid: { type: "Server", id: s.id }, attrs: { name: s.name, resource: s.resourceUri }, parents: [] });
    // Tools that scope mappings can grant (mappings grant tools only).
    const approved = new Set<string>();
    for (const t of [...s.tools].sort((a, b) => a.name.localeCompare(b.name) || (a.kind ?? "tool").localeCompare(b.kind ?? "tool"))) {
      if (!t.approved || t.blocked) continue;
      const kind = t.kind ?? "tool";
      if (kind === "tool") approved.add(t.name);
      // A tool entry stays exactly as before (no kind field): bundles of tool-only servers are unchanged.
      const entry: BundleTool = {
        ...(kind === "tool" ? {} : { kind, label: t.approved.label ?? "", mimeType: t.approved.mimeType ?? null }),
        serverId: s.id,
        name: t.name,
        hash: t.approved.hash,
        title: t.approved.title,
        description: t.approved.description,
        risk: t.risk,
        annotations: t.approved.annotations,
        inputSchema: t.approved.inputSchema,
      };
      catalogue.push(entry);
      entities.push({ uid: entryUid(kind, s.id, t.name), attrs: entityAttrs(entry), parents: [{ type: "Server", id: s.id }] });
    }
    for (const [scope, names] of Object.entries(s.mapping).sort()) {
      const granted = names.filter((n) => approved.has(n));
      if (!granted.length) continue;
      const id = `scope:${s.id}:${scope}`;
      const text = `permit (principal, action in [Action::"call_tool", Action::"list_tools"], resource) when { resource in [${granted.map((n) => `Tool::${JSON.stringify(`${s.id}/${n}`)}`).join(", ")}] && context.scopes.contains(${JSON.stringify(scope)}) };`;
      try {
        policies[id] = confineOnce(text, toJsonOnce(text, store), s.tenantIds, s.id, store);
      } catch (err) {
        // Not a tenant's policy: blocks the draft (fail closed), as an issue, never an exception.
        issues.push({ message: `Scope mapping ${scope} of server ${s.name} cannot be compiled: ${(err as Error).message}` });
        continue;
      }
      meta[id] = { name: `scope ${scope}`, kind: "scope", tenantId: null, serverId: s.id, tools: granted, scope };
    }
  }

  // Two servers one agent would serve at the same address (host and path; scheme and port are not
  // part of it, since a proxy in front of the agent may change both) are refused (issue 17, item 5).
  const byAddress = new Map<string, (typeof snap.servers)[number]>();
  for (const s of [...snap.servers].sort((a, b) => a.id.localeCompare(b.id))) {
    const key = servedAddress(s.resourceUri);
    const first = byAddress.get(key);
    if (first)
      issues.push({
        message: `Servers ${first.name} (${first.id}, ${first.resourceUri}) and ${s.name} (${s.id}, ${s.resourceUri}) would be served by one agent at the same address ${key}; give one of them another host or path, or put them in different fleets`,
      });
    else byAddress.set(key, s);
  }

  for (const p of [...snap.policies].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!p.enabled) continue;
    const s = serverById.get(p.serverId);
    if (!s) continue;
    const ref = { id: p.id, name: p.name };
    if (!s.tenantIds.includes(p.tenantId)) {
      warnings.push(`policy "${p.name}" skipped: its tenant may no longer use server ${s.name}`);
      continue;
    }
    // One static policy (the usual text) is parsed once, not split and then parsed again: Cedar's
    // single-policy parse refuses a template, several policies and an empty text, and any of those
    // goes through the split below, which names the problem (or yields the parts).
    let single: ReturnType<typeof toJson> | null = null;
    try {
      single = toJsonOnce(p.cedar, store);
    } catch {
      single = null;
    }
    const split = single ? { ok: true as const, policies: [p.cedar] } : splitPolicies(p.cedar);
    if (!split.ok) {
      issues.push(...split.issues.map((i) => ({ ...i, policy: ref })));
      continue;
    }
    // Entity ids a policy may name, by type: this server's catalogue entries of each kind.
    const known = new Set(s.tools.map((t) => `${ENTITY_TYPE[t.kind ?? "tool"]}::${s.id}/${t.name}`));
    split.policies.forEach((text, i) => {
      // One tenant's policy never throws for the fleet: what cannot be read or confined is an issue of that policy
      // (its tenant is held back, lib/bundles/scoped.ts), like a failing test.
      let json: ReturnType<typeof toJson>;
      try {
        json = single ?? toJsonOnce(text, store);
      } catch (err) {
        issues.push({ message: `Policy cannot be compiled: ${(err as Error).message}`, policy: ref });
        return;
      }
      const jsonProblems = policyJsonProblems(json);
      issues.push(...jsonProblems.map((x) => ({ ...x, policy: ref })));
      let bad = jsonProblems.length > 0;
      for (const e of entityRefs(json)) {
        const problem =
          CATALOGUE_TYPES.has(e.type) && (!e.id.startsWith(`${s.id}/`) || !known.has(`${e.type}::${e.id}`))
            ? `names ${CATALOGUE_TYPES.get(e.type)} ${e.id}, which is not in the catalogue of ${s.name}`
            : e.type === "Server" && e.id !== s.id
              ? `names server ${e.id}; a policy applies to its own server only`
              : e.type === "Tenant" && e.id !== p.tenantId
                ? `names tenant ${e.id}; a policy applies to its own tenant only`
                : null;
        if (problem) {
          issues.push({ message: `Policy ${problem}`, policy: ref });
          bad = true;
        }
      }
      if (bad) return;
      const id = split.policies.length === 1 ? p.id : `${p.id}.${i + 1}`;
      try {
        policies[id] = confineOnce(text, json, [p.tenantId], s.id, store);
      } catch (err) {
        issues.push({ message: `Policy cannot be confined to its tenant and server: ${(err as Error).message}`, policy: ref });
        return;
      }
      // `@approval("<group>")` on a forbid: the call waits for a person instead of being denied (lib/enforcement/approval.ts).
      const approvers = json.annotations && "approval" in json.annotations ? approverGroups(json.annotations.approval) : null;
      if (approvers && (json.effect !== "forbid" || !approvers.length)) warnings.push(`policy "${p.name}": @approval applies to a forbid naming an approver group; ignored`);
      meta[id] = {
        name: p.name,
        kind: p.kind,
        tenantId: p.tenantId,
        serverId: s.id,
        tools: toolsOf(json, s.id),
        ...(approvers?.length && json.effect === "forbid" ? { approval: { approvers } } : {}),
      };
    });
  }

  // Argument types are per server: every policy is confined to its server, and the engine types
  // a call's arguments by its own server's tools (lib/enforcement/engine.ts), so each server's
  // policies are validated against that server's schema. A same-named argument of another type
  // on another server of the fleet changes nothing here.
  const byServer = argumentTypesByServer(catalogue);
  for (const [serverId, a] of [...byServer].sort((x, y) => x[0].localeCompare(y[0]))) {
    if (a.conflicts.length) warnings.push(`arguments with different types across tools of server ${serverById.get(serverId)?.name ?? serverId} cannot be used in policies: ${a.conflicts.join(", ")}`);
  }
  const policiesByServer = new Map<string, Record<string, string>>();
  for (const pid of Object.keys(policies)) {
    const sid = meta[pid]?.serverId ?? "";
    let mine = policiesByServer.get(sid);
    if (!mine) policiesByServer.set(sid, (mine = {}));
    mine[pid] = policies[pid]!;
  }
  const stringArgs = stringArgumentsByServer(catalogue, byServer);
  for (const [sid, mine] of [...policiesByServer].sort((x, y) => x[0].localeCompare(y[0]))) {
    const types = byServer.get(sid)?.types;
    const serverSchema = cedarSchema(types ? Object.fromEntries(types) : {}, stringArgs.get(sid) ?? []);
    const schemaKey = createHash("sha256").update(JSON.stringify(serverSchema)).digest("base64url");
    // Only texts not yet known valid under this very schema are validated (in one call per server).
    const keyOf = (text: string) => JSON.stringify([schemaKey, text]);
    const toValidate: Record<string, string> = {};
    for (const [pid, text] of Object.entries(mine)) {
      const k = keyOf(text);
      const storeKey = store ? conversionKey("valid", schemaKey, text) : "";
      const stored = store?.get(storeKey) === "ok";
      if (validMemo.has(k)) {
        if (store && !stored) store.set(storeKey, "ok");
        continue;
      }
      if (stored) {
        if (text.length <= MAX_MEMO_TEXT) rememberValid(k);
        continue;
      }
      toValidate[pid] = text;
    }
    const found = Object.keys(toValidate).length ? validatePolicies(serverSchema, toValidate) : [];
    // A problem not tied to one policy (the call itself failed): nothing of this call is remembered.
    if (found.every((i) => i.policyId && i.policyId in toValidate)) {
      const failed = new Set(found.map((i) => i.policyId));
      for (const [pid, text] of Object.entries(toValidate)) {
        if (failed.has(pid)) continue;
        if (text.length <= MAX_MEMO_TEXT) rememberValid(keyOf(text));
        store?.set(conversionKey("valid", schemaKey, text), "ok");
      }
    }
    for (const i of found) {
      const m = i.policyId ? meta[i.policyId] : undefined;
      const pid = i.policyId?.replace(/\.\d+$/, "");
      // Locations point into the confined text; the admin's own text is validated on save.
      issues.push({ message: i.message, ...(i.help ? { help: i.help } : {}), ...(m && pid?.startsWith("pol_") ? { policy: { id: pid, name: m.name } } : {}) });
    }
  }
  // The bundle's informational schema: the arguments typed alike on every server (validation above is per server).
  const schema = cedarSchema(argumentTypes(catalogue).types);

  const content: BundleContent = {
    manifest: {
      format: BUNDLE_FORMAT,
      fleetId: manifest.fleetId,
      revision: manifest.revision,
      parentRevision: manifest.parentRevision,
      createdAt: manifest.createdAt,
      compilerVersion: COMPILER_VERSION,
    },
    // Each server carries only the trust of the tenants it admits (trust is granted by a tenant, never by the server).
    servers: snap.servers.map(({ tools: _t, mapping: _m, ...s }) => ({ ...s, trust: (s.trust ?? []).filter((t) => s.tenantIds.includes(t.tenantId)) })).sort((a, b) => a.id.localeCompare(b.id)),
    catalogue,
    cedar: { schema, policies, entities },
    policies: meta,
    ...(snap.live ?? { revocations: [], approvedClients: [], clientApproval: [], credentials: [], masking: [] }),
  };
  return { content, issues, warnings, tests: runTests(content, snap.tests, issues.length === 0) };
}

/**
 * The stored conversions a compile of the fleet will look up for one saved policy (and for its server's scope
 * mappings), computed when the policy is saved (lib/bundles/conversions.ts `storePolicyConversions`). They come from
 * compileBundle itself, run on the policy's server and that policy alone: every key and value is the one the
 * fleet's compile computes, because each is a function of its own inputs only (the policy text, its tenant and
 * server, the server's schema, which is derived from that server's catalogue alone). Nothing is read from a store
 * here; a disabled policy, or one whose tenant may not use the server, yields only the scope mappings' entries.
 */
export function conversionsOf(server: RegistrySnapshot["servers"][number], policy: RegistrySnapshot["policies"][number]): Map<string, string> {
  const out = new Map<string, string>();
  // Never answers: every conversion the compile uses is offered to set().
  const collect: ConversionStore = { get: () => undefined, set: (k, v) => void out.set(k, v) };
  compileBundle({ servers: [server], policies: [policy], tests: [] }, { fleetId: "conversions", revision: 0, parentRevision: null, createdAt: "" }, { store: collect });
  return out;
}

/** Where an agent serves a resource URI: its host (without port) and path; an unparsable URI is its own address. */
export function servedAddress(resourceUri: string): string {
  try {
    const u = new URL(resourceUri);
    return `${u.hostname.toLowerCase()}${u.pathname.replace(/\/+$/, "") || "/"}`;
  } catch {
    return resourceUri;
  }
}

/** Runs policy tests against compiled content; with compile errors they do not run. */
export function runTests(content: BundleContent, tests: RegistrySnapshot["tests"], runnable: boolean): TestResult[] {
  // No tests, nothing to decide: the engine (which parses the whole policy set again, ~⅕ of a
  // 2,000-policy compile) is built only when a test will use it. Every policy was already parsed
  // and strictly validated by compileBundle; the engine's parse is not a check compile relies on.
  if (tests.length === 0) return [];
  const engine = runnable ? new PolicyEngine(content) : null;
  return tests.map((t) => {
    const base = { id: t.id, name: t.name, tenantId: t.tenantId, serverId: t.serverId, expected: t.expected };
    if (!engine) return { ...base, actual: "not_run" as const, passed: false };
    const r = t.request;
    const result = engine.decide({
      action: r.action,
      serverId: t.serverId,
      tool: r.tool,
      tenantId: t.tenantId,
      user: r.user,
      groups: r.groups,
      client: r.client,
      scopes: r.scopes,
      args: r.args,
      time: r.time ? new Date(r.time) : undefined,
    });
    return { ...base, actual: result.decision, passed: result.decision === t.expected, result };
  });
}
