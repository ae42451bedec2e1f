import type { BundleContent } from "@/lib/enforcement/bundle";
import { validatePolicies } from "@/lib/policy/cedar-tools";
import { runTests, type CompileIssue, type CompileResult, type RegistrySnapshot, type TestResult } from "./compile";

/** A tenant whose part of a draft is held at the live revision, and why. */
export interface HeldBack {
  tenantId: string;
  /** Each failing test or policy problem of the tenant found in the draft. */
  problems: string[];
  /** The tenant's tests run against what is published instead (its live policies). */
  tests: TestResult[];
}

export interface ScopedResult extends CompileResult {
  heldBack: HeldBack[];
}

const issueText = (i: CompileIssue) => `${i.policy ? `${i.policy.name}: ` : ""}${i.message}${i.line ? ` (line ${i.line}, column ${i.column})` : ""}`;
const testText = (t: TestResult) => `test "${t.name}" expected ${t.expected}, got ${t.actual === "not_run" ? "no result" : t.actual}`;

/**
 * Scopes the blockers of a compiled draft by tenant (issue 17, item 6): a
 * tenant whose policy does not compile or whose test fails does not block the
 * fleet. Its part of the draft is held at the live revision instead: its
 * policies are those of `live` (none when nothing is published), and it is
 * admitted on a server only where `live` admitted it. Every other tenant's
 * change goes out. Problems that belong to no tenant (the servers, scope
 * mappings, the catalogue) still block, as do held-back live policies that no
 * longer validate against the draft's schema (fail closed).
 * Pure: no database.
 */
export function scopeByTenant(draft: CompileResult, snap: RegistrySnapshot, live: BundleContent | null): ScopedResult {
  const tenantOfPolicy = new Map(snap.policies.map((p) => [p.id, p.tenantId]));
  const tenantOfIssue = (i: CompileIssue) => (i.policy ? tenantOfPolicy.get(i.policy.id) : undefined);
  // A problem outside every tenant's own policies blocks the whole draft, as before.
  if (draft.issues.some((i) => tenantOfIssue(i) === undefined)) return { ...draft, heldBack: [] };

  const problems = new Map<string, string[]>();
  const note = (tenant: string, text: string) => problems.set(tenant, [...(problems.get(tenant) ?? []), text]);
  for (const i of draft.issues) note(tenantOfIssue(i)!, issueText(i));
  // Tests did not run when there were issues; they run on the scoped content below.
  if (!draft.issues.length) for (const t of draft.tests) if (!t.passed) note(t.tenantId, testText(t));
  if (!problems.size) return { ...draft, heldBack: [] };

  // Tenants' policies are confined to their tenant, so holding one back never changes another's results:
  // at most one more round finds the tenants whose tests could not run the first time.
  for (let round = 0; round < 3; round++) {
    const held = new Set(problems.keys());
    const content = holdBack(draft.content, live, held);
    const issues: CompileIssue[] = validatePolicies(content.cedar.schema, content.cedar.policies).map((i) => {
      const m = i.policyId ? content.policies[i.policyId] : undefined;
      const tenant = m?.tenantId ? ` of tenant ${m.tenantId}` : "";
      return { message: `${m ? `the published version of policy "${m.name}"${tenant} does not validate against this draft: ` : ""}${i.message}`, ...(i.help ? { help: i.help } : {}) };
    });
    const tests = runTests(content, snap.tests, issues.length === 0);
    let more = false;
    if (!issues.length) {
      for (const t of tests) {
        if (!t.passed && !held.has(t.tenantId)) {
          note(t.tenantId, testText(t));
          more = true;
        }
      }
    }
    if (more) continue;
    return {
      content,
      issues,
      warnings: draft.warnings,
      tests: tests.filter((t) => !held.has(t.tenantId)),
      heldBack: [...held].sort().map((tenantId) => ({ tenantId, problems: problems.get(tenantId)!, tests: tests.filter((t) => t.tenantId === tenantId) })),
    };
  }
  // Unreachable with confined policies; fail closed if it ever is not.
  return { ...draft, heldBack: [] };
}

/** Draft content with the `held` tenants' policies and admissions taken from `live` (a copy). */
export function holdBack(draft: BundleContent, live: BundleContent | null, held: Set<string>): BundleContent {
  const liveServer = new Map((live?.servers ?? []).map((s) => [s.id, s]));
  const servers = draft.servers.map((s) => {
    const before = liveServer.get(s.id)?.tenantIds ?? [];
    const tenantIds = s.tenantIds.filter((t) => !held.has(t) || before.includes(t));
    // Trust is carried only for the tenants admitted (bundles older than per-tenant trust have none).
    return { ...s, tenantIds, ...(s.trust ? { trust: s.trust.filter((x) => tenantIds.includes(x.tenantId)) } : {}) };
  });
  const admitted = new Map(servers.map((s) => [s.id, new Set(s.tenantIds)]));
  const policies: BundleContent["cedar"]["policies"] = {};
  const meta: BundleContent["policies"] = {};
  for (const [id, text] of Object.entries(draft.cedar.policies)) {
    const m = draft.policies[id];
    if (m?.tenantId && held.has(m.tenantId)) continue;
    policies[id] = text;
    if (m) meta[id] = m;
  }
  for (const [id, text] of Object.entries(live?.cedar.policies ?? {})) {
    const m = live!.policies[id];
    if (!m?.tenantId || !held.has(m.tenantId) || !admitted.get(m.serverId)?.has(m.tenantId)) continue;
    policies[id] = text;
    meta[id] = m;
  }
  return { ...draft, servers, cedar: { ...draft.cedar, policies }, policies: meta };
}
