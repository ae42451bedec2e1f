import type { BundleContent } from "@/lib/enforcement/bundle";
import { argumentTypes, argumentTypesByServer, cedarSchema, stringArgumentsByServer } from "@/lib/enforcement/model";
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
 * fleet. Its part of the draft is held at the live revision instead
 * (`holdBack`). Every other tenant's change goes out. Problems that belong to
 * no tenant (two servers at one address, a scope mapping that does not
 * validate) still block, as do held-back live policies that no longer
 * validate against the draft (fail closed).
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
  // a few rounds at most (tests that could not run the first time; held-back policies that no longer fit).
  const unadmitted = new Set<string>();
  for (let round = 0; round < 6; round++) {
    const held = new Set(problems.keys());
    const content = holdBack(draft.content, live, held, unadmitted);
    const found = validateByServer(content);
    // A held tenant's live policy that no longer validates against the draft (another tenant changed the
    // server's tools) leaves that tenant unadmitted on that server in this revision: fail closed for it
    // alone, instead of letting its failing test block everyone.
    let more = false;
    for (const i of found) {
      const m = i.policyId ? content.policies[i.policyId] : undefined;
      if (!m?.tenantId || !held.has(m.tenantId)) continue;
      unadmitted.add(`${m.serverId}\u0000${m.tenantId}`);
      note(m.tenantId, `not admitted on server ${m.serverId} in this revision: its published policy "${m.name}" does not validate against the draft (${i.message})`);
      more = true;
    }
    if (more) continue;
    const issues: CompileIssue[] = found.map((i) => ({ message: i.message, ...(i.help ? { help: i.help } : {}) }));
    const tests = runTests(content, snap.tests, issues.length === 0);
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

/** Validates each server's policies against that server's argument types, as the compiler does. */
function validateByServer(content: BundleContent) {
  const byServer = argumentTypesByServer(content.catalogue);
  const stringArgs = stringArgumentsByServer(content.catalogue, byServer);
  const groups = new Map<string, Record<string, string>>();
  for (const [id, text] of Object.entries(content.cedar.policies)) {
    const sid = content.policies[id]?.serverId ?? "";
    let mine = groups.get(sid);
    if (!mine) groups.set(sid, (mine = {}));
    mine[id] = text;
  }
  return [...groups]
    .sort((x, y) => x[0].localeCompare(y[0]))
    .flatMap(([sid, mine]) => {
      const types = byServer.get(sid)?.types;
      return validatePolicies(cedarSchema(types ? Object.fromEntries(types) : {}, stringArgs.get(sid) ?? []), mine);
    });
}

/**
 * Draft content with the `held` tenants' parts taken from `live` (a copy). A
 * tenant's part is: its own policies; its admission on each server (kept only
 * where live admitted it); its trust entries; and, for each server it owns,
 * the server's definition (resource URI, upstream, scopes, issuers), scope
 * mappings and approved catalogue. A held owner's server that live did not
 * serve is left out. `unadmitted` (`serverId\u0000tenantId`) removes a held
 * tenant from a server. Other tenants' parts are the draft's.
 */
export function holdBack(draft: BundleContent, live: BundleContent | null, held: Set<string>, unadmitted: ReadonlySet<string> = new Set()): BundleContent {
  const liveServer = new Map((live?.servers ?? []).map((s) => [s.id, s]));
  // Servers whose owner is held keep their live definition, or are not served when live did not serve them.
  const ownerHeld = new Set(draft.servers.filter((s) => held.has(s.tenantId)).map((s) => s.id));
  const servers = draft.servers.flatMap((s) => {
    const before = liveServer.get(s.id);
    if (ownerHeld.has(s.id) && !before) return [];
    const tenantIds = s.tenantIds.filter((t) => !unadmitted.has(`${s.id}\u0000${t}`) && (!held.has(t) || (before?.tenantIds ?? []).includes(t)));
    const base = ownerHeld.has(s.id) ? { ...before!, tenantIds } : { ...s, tenantIds };
    if (!s.trust && !before?.trust) return [base];
    // Each tenant's trust entries are its own part: a held tenant's come from live.
    const trust = [...(s.trust ?? []).filter((x) => !held.has(x.tenantId)), ...(before?.trust ?? []).filter((x) => held.has(x.tenantId))].filter((x) => tenantIds.includes(x.tenantId));
    return [{ ...base, trust: trust.sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.issuer.localeCompare(b.issuer)) }];
  });
  const kept = new Set(servers.map((s) => s.id));
  const admitted = new Map(servers.map((s) => [s.id, new Set(s.tenantIds)]));
  const fromLive = (m: BundleContent["policies"][string] | undefined) =>
    !!m && kept.has(m.serverId) && (m.tenantId ? held.has(m.tenantId) && admitted.get(m.serverId)!.has(m.tenantId) : ownerHeld.has(m.serverId) && m.kind === "scope");
  const fromDraft = (m: BundleContent["policies"][string] | undefined) => !m || (kept.has(m.serverId) && (m.tenantId ? !held.has(m.tenantId) : !(ownerHeld.has(m.serverId) && m.kind === "scope")));
  const policies: BundleContent["cedar"]["policies"] = {};
  const meta: BundleContent["policies"] = {};
  for (const [id, text] of Object.entries(draft.cedar.policies)) {
    const m = draft.policies[id];
    if (!fromDraft(m)) continue;
    policies[id] = text;
    if (m) meta[id] = m;
  }
  for (const [id, text] of Object.entries(live?.cedar.policies ?? {})) {
    const m = live!.policies[id];
    if (!fromLive(m)) continue;
    policies[id] = text;
    meta[id] = m!;
  }
  if (!ownerHeld.size) return { ...draft, servers, cedar: { ...draft.cedar, policies }, policies: meta };
  const toolServer = (id: string) => id.slice(0, id.indexOf("/"));
  const catalogue = [
    ...draft.catalogue.filter((t) => kept.has(t.serverId) && !ownerHeld.has(t.serverId)),
    ...(live?.catalogue ?? []).filter((t) => kept.has(t.serverId) && ownerHeld.has(t.serverId)),
  ].sort((a, b) => a.serverId.localeCompare(b.serverId) || a.name.localeCompare(b.name));
  const entityHeld = (e: { uid: { type: string; id: string } }) => (e.uid.type === "Server" ? ownerHeld.has(e.uid.id) : e.uid.type === "Tool" ? ownerHeld.has(toolServer(e.uid.id)) : false);
  const entityKept = (e: { uid: { type: string; id: string } }) => (e.uid.type === "Server" ? kept.has(e.uid.id) : e.uid.type === "Tool" ? kept.has(toolServer(e.uid.id)) : true);
  const entities = [...draft.cedar.entities.filter((e) => entityKept(e) && !entityHeld(e)), ...(live?.cedar.entities ?? []).filter((e) => entityKept(e) && entityHeld(e))];
  return { ...draft, servers, catalogue, cedar: { schema: cedarSchema(argumentTypes(catalogue).types), policies, entities }, policies: meta };
}
