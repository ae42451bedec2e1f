import type { FormattingAnswer, PolicySetTextToPartsAnswer, PolicyToJsonAnswer, ValidationAnswer, ValidationCall } from "@cedar-policy/cedar-wasm/nodejs";
import { cedar, lineCol, type PolicyJson, type SchemaJson } from "@/lib/enforcement/cedar";

/** A problem in Cedar text, at its line and column when Cedar says where. */
export interface CedarIssue {
  message: string;
  help?: string;
  line?: number;
  column?: number;
  policyId?: string;
}

/** A Cedar error as an issue, at its line and column in `text`. */
export const issue = (text: string, e: { message: string; help: string | null; sourceLocations?: { start: number }[] }, policyId?: string): CedarIssue => {
  const at = e.sourceLocations?.[0];
  return { message: e.message, ...(e.help ? { help: e.help } : {}), ...(at ? lineCol(text, at.start) : {}), ...(policyId ? { policyId } : {}) };
};

/** Splits Cedar text into its policies, or returns the parse errors. */
export function splitPolicies(text: string): { ok: true; policies: string[] } | { ok: false; issues: CedarIssue[] } {
  return splitAnswer(text, cedar.policySetTextToParts(text));
}

/** Interprets a `policySetTextToParts` answer. */
export function splitAnswer(text: string, parts: PolicySetTextToPartsAnswer): { ok: true; policies: string[] } | { ok: false; issues: CedarIssue[] } {
  if (parts.type !== "success") return { ok: false, issues: parts.errors.map((e) => issue(text, e)) };
  if (parts.policy_templates.length) return { ok: false, issues: [{ message: "templates are not supported; write static policies" }] };
  if (parts.policies.length === 0) return { ok: false, issues: [{ message: "write at least one policy" }] };
  return { ok: true, policies: parts.policies };
}

export function toJson(policy: string): PolicyJson {
  return jsonAnswer(cedar.policyToJson(policy));
}

function jsonAnswer(j: PolicyToJsonAnswer): PolicyJson {
  if (j.type !== "success") throw new Error(j.errors.map((e) => e.message).join("; "));
  return j.json;
}

/** Every entity literal a policy names (in its scope or conditions). */
export function entityRefs(policy: PolicyJson): { type: string; id: string }[] {
  const out: { type: string; id: string }[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if (o.__entity && typeof o.__entity === "object") {
      const e = o.__entity as { type: string; id: string };
      out.push({ type: e.type, id: e.id });
      return;
    }
    if (typeof o.type === "string" && typeof o.id === "string" && Object.keys(o).length === 2) {
      out.push({ type: o.type, id: o.id });
      return;
    }
    Object.values(o).forEach(walk);
  };
  walk(policy);
  return out;
}

/** The largest integer a policy literal may hold: Cedar Longs are 64-bit, but a policy's JSON form passes through JS numbers. */
export const MAX_POLICY_INTEGER = Number.MAX_SAFE_INTEGER;

/**
 * Problems of a policy's JSON form that Cedar's validation does not report:
 * - an integer literal past ±(2^53 − 1): the JSON form (a JS number) no
 *   longer holds it exactly, so the compiled policy would compare against
 *   another number, or not compile at all near the 64-bit bounds;
 * - a bare `User::"alice"`: user ids are issuer-qualified (`<iss>#<sub>`), so
 *   it matches no token, and a forbid written that way protects nothing.
 */
export function policyJsonProblems(policy: PolicyJson): CedarIssue[] {
  const out: CedarIssue[] = [];
  const seen = new Set<string>();
  const add = (message: string, help?: string) => {
    if (seen.has(message)) return;
    seen.add(message);
    out.push({ message, ...(help ? { help } : {}) });
  };
  const walk = (v: unknown) => {
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v))
        add(
          `integer literal ${Number.isFinite(v) ? BigInt(Math.trunc(v)) : v} is out of range: integers in policies are limited to ±${MAX_POLICY_INTEGER} (2^53 − 1)`,
          "use a smaller bound; a larger one cannot be compiled exactly",
        );
      return;
    }
    if (!v || typeof v !== "object") return;
    if (Array.isArray(v)) return v.forEach(walk);
    Object.values(v as Record<string, unknown>).forEach(walk);
  };
  walk(policy);
  for (const e of entityRefs(policy)) {
    if (e.type === "User" && !e.id.includes("#"))
      add(`User::${JSON.stringify(e.id)} matches no user: user ids are issuer-qualified: write User::${JSON.stringify(`<issuer>#${e.id}`)} or principal.sub == ${JSON.stringify(e.id)}`);
  }
  return out;
}

/** Names of `context.args` attributes a policy reads or tests with `has`. */
export function argRefs(policy: PolicyJson): string[] {
  const out = new Set<string>();
  const isArgs = (e: unknown) => {
    const d = (e as { ".": { left: { Var?: string }; attr: string } })?.["."];
    return Boolean(d && d.left?.Var === "context" && d.attr === "args");
  };
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, { left?: unknown; attr?: unknown }>;
    for (const k of [".", "has"]) {
      const n = o[k];
      if (n && isArgs(n.left)) (Array.isArray(n.attr) ? n.attr.slice(0, 1) : [n.attr]).forEach((a) => typeof a === "string" && out.add(a));
    }
    Object.values(o).forEach(walk);
  };
  walk(policy);
  return [...out];
}

/**
 * The tools a policy can possibly apply to, or null for "any tool". Sound by
 * construction: a `resource == Tool` scope, or a `resource in [Tools]` /
 * `resource == Tool` term that must hold in a `when` conjunction. Anything
 * else (an `unless`, a disjunction) counts as any tool.
 */
export function toolsOf(policy: PolicyJson, serverId: string): string[] | null {
  const names = (e: unknown): string[] | null => {
    const ent = (v: unknown) => (v as { __entity?: { type: string; id: string } })?.__entity ?? (v as { type: string; id: string });
    const list = (vals: unknown[]) => {
      const out: string[] = [];
      for (const v of vals) {
        const x = ent(v);
        if (x?.type !== "Tool" || !x.id.startsWith(`${serverId}/`)) return null;
        out.push(x.id.slice(serverId.length + 1));
      }
      return out;
    };
    const o = e as Record<string, { left?: { Var?: string }; right?: { Value?: unknown; Set?: { Value?: unknown }[] } }>;
    for (const op of ["in", "=="]) {
      const n = o[op];
      if (n?.left?.Var !== "resource" || !n.right) continue;
      if (n.right.Value !== undefined) return list([n.right.Value]);
      if (n.right.Set) return n.right.Set.every((x) => x.Value !== undefined) ? list(n.right.Set.map((x) => x.Value)) : null;
    }
    return null;
  };
  const conjuncts = (e: unknown): unknown[] => {
    const and = (e as { "&&"?: { left: unknown; right: unknown } })["&&"];
    return and ? [...conjuncts(and.left), ...conjuncts(and.right)] : [e];
  };
  if (policy.resource.op === "==" && "entity" in policy.resource) return names({ "==": { left: { Var: "resource" }, right: { Value: policy.resource.entity } } });
  for (const c of policy.conditions) {
    if (c.kind !== "when") continue;
    for (const term of conjuncts(c.body)) {
      const found = names(term);
      if (found) return found;
    }
  }
  return null;
}

/**
 * Confines a policy to one tenant and one server: appends
 * `when { principal in Tenant::"t" && resource in Server::"s" }`, so a
 * tenant's permit or forbid can never touch another tenant's requests or
 * another server's tools, whatever its own scope says.
 */
export function confine(policy: PolicyJson, tenantIds: string[], serverId: string): string {
  const tenant = (t: string) => ({ __entity: { type: "Tenant", id: t } });
  // Several tenants as one set (`principal in [Tenant::"a", …]`), not an `||` chain: a chain nests one
  // level per tenant, and past ~45 tenants it would exceed the Cedar depth bound (lib/enforcement/cedar.ts).
  const tenantExpr =
    tenantIds.length === 1
      ? { in: { left: { Var: "principal" }, right: { Value: tenant(tenantIds[0]!) } } }
      : { in: { left: { Var: "principal" }, right: { Set: tenantIds.map((t) => ({ Value: tenant(t) })) } } };
  const body = { "&&": { left: tenantExpr, right: { in: { left: { Var: "resource" }, right: { Value: { __entity: { type: "Server", id: serverId } } } } } } };
  const confined = { ...policy, conditions: [...policy.conditions, { kind: "when" as const, body: body as never }] };
  const t = cedar.policyToText(confined);
  if (t.type !== "success") throw new Error(t.errors.map((e) => e.message).join("; "));
  return t.text;
}

/** The strict validation call of a policy set against a schema. */
export const validationCall = (schema: SchemaJson<string>, policies: Record<string, string> | string): ValidationCall => ({
  schema,
  policies: { staticPolicies: policies },
  validationSettings: { mode: "strict" },
});

/** Strict validation of a policy set against a schema; every problem at once. */
export function validatePolicies(schema: SchemaJson<string>, policies: Record<string, string> | string): CedarIssue[] {
  return validationIssues(policies, cedar.validate(validationCall(schema, policies)));
}

/** Interprets a `validate` answer; every problem once, with positions. */
export function validationIssues(policies: Record<string, string> | string, res: ValidationAnswer): CedarIssue[] {
  if (res.type !== "success") return res.errors.map((e) => ({ message: e.message, ...(e.help ? { help: e.help } : {}) }));
  const seen = new Set<string>();
  const out: CedarIssue[] = [];
  // Warnings block too: an "impossible" policy is usually a misspelt attribute,
  // and a forbid that can never match would silently protect nothing.
  for (const v of [...res.validationErrors, ...res.validationWarnings]) {
    // Cedar reports one error per action; the admin needs each once.
    const msg = v.error.message.replace(/ for Action::"\w+"/, "").replace(/^for policy `[^`]+`, /, "");
    const help = v.error.help ?? (/impossible/.test(msg) ? "check attribute and argument names: one that does not exist makes the condition always false" : null);
    const key = `${v.policyId}|${msg}|${v.error.sourceLocations?.[0]?.start}`;
    if (seen.has(key)) continue;
    seen.add(key);
    // Locations are offsets into the text as given: the whole text, or the policy's own.
    const text = typeof policies === "string" ? policies : (policies[v.policyId] ?? "");
    out.push(issue(text, { ...v.error, message: msg, help }, typeof policies === "string" ? undefined : v.policyId));
  }
  return out;
}

/** The formatting call the editor uses. */
export const formattingCall = (text: string) => ({ policyText: text, lineWidth: 100, indentWidth: 2 });

export function formatCedar(text: string): { ok: true; text: string } | { ok: false; issues: CedarIssue[] } {
  return formatAnswer(text, cedar.formatPolicies(formattingCall(text)));
}

/** Interprets a `formatPolicies` answer. */
export function formatAnswer(text: string, f: FormattingAnswer): { ok: true; text: string } | { ok: false; issues: CedarIssue[] } {
  return f.type === "success" ? { ok: true, text: f.formatted_policy } : { ok: false, issues: f.errors.map((e) => issue(text, e)) };
}

export function schemaText(schema: SchemaJson<string>): string {
  const t = cedar.schemaToText(schema);
  return t.type === "success" ? t.text : "";
}
