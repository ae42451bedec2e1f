import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { entryHash, entryKey, KIND_OF_FIELD, type CatalogueKind } from "@/lib/enforcement/catalogue-entry";
import { decide, decisionView, driftKey, filterList, LIST_METHOD, type DecidePrincipal, type DecisionView, type ListKind, type LiveState } from "@/lib/enforcement/decide";
import { compileOf, policy, principal, toolDef } from "./decide-fixtures";
import { prompts, resources, snapshot, templates } from "./resource-fixtures";

/**
 * filterList() takes the entry-independent checks once per list and per entry only the catalogue,
 * hash, drift and Cedar (issue 12). This holds it to the definition it replaced: every entry decided
 * by the whole `decide()` — kept items, hidden reasons, changed entries and the list's record.
 * filterList() hashes an item's JSON text (what the agent sends on): for items that come from JSON,
 * as every upstream answer does, that is entryHash of the item itself; for an in-process object with
 * values JSON cannot carry (NaN) it is the hash of what would be sent (`sent` below).
 */
const sent = (kind: CatalogueKind, t: unknown) => entryHash(kind, JSON.parse(JSON.stringify(t)));
function reference<T>(
  view: DecisionView,
  request: { serverId: string; principal: DecidePrincipal; time?: Date },
  kind: ListKind,
  items: readonly T[],
  live: LiveState,
  hashOf: (kind: CatalogueKind, t: unknown) => string = entryHash,
) {
  const kept: T[] = [];
  const hidden: string[] = [];
  const changed: { serverId: string; kind: ListKind; name: string; tool: string; live: string; approved: string }[] = [];
  const entryKind: CatalogueKind = KIND_OF_FIELD[kind];
  const method = LIST_METHOD[kind];
  const total = items.length;
  const noun = kind === "resourceTemplates" ? "resource templates" : kind;
  const base = { ...request, name: null, tool: null, args: null };
  const gate = decide(view, { ...base, method }, live);
  if (gate.decision === "deny") return { kept, hidden, changed, record: { ...gate, reason: `listed 0 of ${total} ${noun}: ${gate.reason}` } };
  const client = decide(view, { ...base, method: "tools/call", name: "\u0000no such entry" }, live);
  if (client.stage === "client") return { kept, hidden, changed, record: { ...client, reason: `listed 0 of ${total} ${noun}: ${client.reason}` } };
  for (const t of items) {
    const name = entryKey(entryKind, t);
    const approved = name !== null ? view.engine.entry(request.serverId, entryKind, name) : undefined;
    if (name === null || !approved) {
      const o = t && typeof t === "object" ? (t as Record<string, unknown>) : {};
      hidden.push(`${String(name ?? (entryKind === "resource" ? o.uri : entryKind === "resourceTemplate" ? o.uriTemplate : o.name))} (not approved)`);
      continue;
    }
    let hash: string;
    try {
      hash = hashOf(entryKind, t);
    } catch {
      hash = "";
    }
    if (hash !== approved.hash) {
      changed.push({ serverId: request.serverId, kind, name, tool: name, live: hash, approved: approved.hash });
      hidden.push(`${name} (changed upstream)`);
      continue;
    }
    const d = decide(view, { ...base, method, name }, live);
    if (d.decision === "allow") kept.push(t);
    else hidden.push(`${name} (${d.stage === "drift" ? "changed upstream" : "not allowed"})`);
  }
  return { kept, hidden, changed, record: { decision: "allow", stage: "list", reason: `listed ${kept.length} of ${total} ${noun}${hidden.length ? `; hidden: ${hidden.join(", ")}` : ""}` } };
}

const time = new Date("2026-11-25T12:00:00Z");
const TOOLS = ["transfer", "balance", "export", "wipe", "search"];
const toolSpecs = TOOLS.map((name, i) => ({ name, properties: i % 2 ? {} : { amount: { type: "integer" }, to: { type: "string" } } }));
const POOL = [
  policy("pol_list_fin", "ten_a", "srv_a", `permit (principal in Group::"finance", action == Action::"list_tools", resource);`),
  policy(
    "pol_list_alice",
    "ten_a",
    "srv_a",
    `permit (principal == User::"https://as.example.com#alice", action in [Action::"list_tools", Action::"list_resources", Action::"list_resource_templates", Action::"list_prompts"], resource);`,
  ),
  policy("pol_no_wipe", "ten_a", "srv_a", `forbid (principal, action, resource == Tool::"srv_a/wipe");`),
  policy("pol_appr_list", "ten_a", "srv_a", `@approval("ops")\nforbid (principal, action == Action::"list_tools", resource == Tool::"srv_a/export");`),
  policy(
    "pol_appr_call",
    "ten_a",
    "srv_a",
    `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource == Tool::"srv_a/transfer") when { context.args has amount && context.args.amount > 10 };`,
  ),
  policy("pol_args", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`),
  policy("pol_scope", "ten_a", "srv_a", `permit (principal, action, resource) when { context.scopes.contains("all") };`),
  policy("pol_no_payroll", "ten_a", "srv_a", `forbid (principal, action, resource == Resource::"srv_a/file:///secrets/payroll.csv");`),
  policy("pol_readers", "ten_a", "srv_a", `permit (principal in Group::"readers", action in [Action::"list_resources", Action::"list_resource_templates", Action::"list_prompts"], resource);`),
  policy("pol_no_escalate", "ten_a", "srv_a", `@approval("ops")\nforbid (principal, action == Action::"list_prompts", resource == Prompt::"srv_a/escalate");`),
];

function bundles(): BundleContent[] {
  const out: BundleContent[] = [];
  const subsets = [[0, 1, 2, 3, 4, 5, 7, 8, 9], [0, 2, 6], [1, 3, 9], [0, 1, 3, 4, 5, 6, 7, 8, 9], []];
  for (const sub of subsets) {
    const snap = snapshot(sub.map((i) => POOL[i]!));
    snap.servers[0]!.tools.push(
      ...(toolSpecs.map((t) => {
        const d = toolDef(t.name, t.properties);
        return { name: t.name, risk: "low", blocked: false, approved: { hash: entryHash("tool", d), title: null, description: d.description, annotations: {}, inputSchema: d.inputSchema } };
      }) as unknown as (typeof snap.servers)[number]["tools"]),
    );
    const c = compileOf(snap);
    if (c.issues.length) throw new Error(c.issues.map((i) => i.message).join("; "));
    out.push(c.content);
  }
  return out;
}

const listed: Record<ListKind, unknown[]> = {
  tools: [
    ...toolSpecs.map((t) => toolDef(t.name, t.properties)),
    toolDef("unapproved", {}),
    { ...toolDef("balance", {}), description: "changed" },
    { ...toolDef("search", {}), inputSchema: { type: "object", properties: { x: { type: "number", minimum: Number.NaN } } } },
    { name: "" },
    null,
    7,
    "text",
    toolDef("get_ticket", { id: { type: "string" }, amount: { type: "integer" } }),
  ],
  resources: [...resources, { ...resources[0]!, title: "Changed" }, { uri: "file:///etc/passwd", name: "passwd" }, { name: "no uri" }],
  resourceTemplates: [...templates, { uriTemplate: "other://{x}", name: "other" }],
  prompts: [...prompts, { ...prompts[1]!, description: "changed" }, { name: "unknown" }],
};
const KINDS: ListKind[] = ["tools", "resources", "resourceTemplates", "prompts"];
const drift = ["tools:transfer", "tools:wipe", "resources:file:///docs/handbook.md", "prompts:summarize", "resourceTemplates:tickets://{project}/{id}"];

describe("filterList(): the list path keeps exactly what per-entry decide() keeps", () => {
  const contents = bundles();

  it("random catalogues, policies, principals, live sections and drift sets", () => {
    fc.assert(
      fc.property(
        fc.record({
          bundle: fc.nat(contents.length - 1),
          kind: fc.constantFrom(...KINDS),
          items: fc.array(fc.nat(40), { maxLength: 14 }),
          user: fc.constantFrom("https://as.example.com#alice", "https://as.example.com#bob"),
          groups: fc.subarray(["finance", "readers", "ops"]),
          scopes: fc.subarray(["all", "read"]),
          client: fc.constantFrom("cli", "other"),
          tenant: fc.constantFrom("ten_a", "ten_a", "ten_b", "ten_x"),
          server: fc.constantFrom("srv_a", "srv_a", "srv_a", "srv_none"),
          revoke: fc.constantFrom("none", "user", "tenant", "later"),
          clientApproval: fc.boolean(),
          drifted: fc.subarray(drift),
        }),
        (r) => {
          const base = contents[r.bundle]!;
          const content: BundleContent = {
            ...base,
            revocations:
              r.revoke === "none"
                ? []
                : r.revoke === "user"
                  ? [{ tenantId: "ten_a", user: "https://as.example.com#alice", before: "2026-11-25T00:00:00Z" }]
                  : r.revoke === "tenant"
                    ? [{ tenantId: "ten_a", before: "2026-11-25T00:00:00Z" }]
                    : [{ tenantId: "ten_a", before: "2000-01-01T00:00:00Z" }],
            clientApproval: r.clientApproval ? ["ten_a"] : [],
            approvedClients: [{ tenantId: "ten_a", clientId: "cli" }],
          };
          const view = decisionView(content);
          const pool = listed[r.kind];
          const items = r.items.map((i) => pool[i % pool.length]);
          const p = principal({ user: r.user, groups: r.groups, scopes: r.scopes, client: r.client, tenantId: r.tenant, iat: Math.floor(Date.parse("2026-11-24T00:00:00Z") / 1000) });
          const live: LiveState = { drifted: new Set(r.drifted.map((d) => driftKey("srv_a", d.slice(0, d.indexOf(":")) as ListKind, d.slice(d.indexOf(":") + 1)))) };
          const request = { serverId: r.server, principal: p, time };
          const wire = JSON.parse(JSON.stringify(items)) as unknown[]; // as the agent parses an upstream answer
          // Twice each: the second list takes every hash from the per-bundle cache.
          for (const [list, want] of [
            [wire, reference(view, request, r.kind, wire, live)],
            [items, reference(view, request, r.kind, items, live, sent)],
            [wire, reference(view, request, r.kind, wire, live)],
          ] as const)
            for (let i = 0; i < 2; i++) {
              const got = filterList(view, request, r.kind, list, live);
              expect(got.kept.length).toBe(want.kept.length);
              got.kept.forEach((t, j) => expect(t).toBe(want.kept[j]));
              expect(got.hidden).toEqual(want.hidden);
              expect(got.changed).toEqual(want.changed);
              expect(got.record).toMatchObject(want.record);
            }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("covers each outcome: approval-annotated forbids let a listing through, plain forbids hide, drift and changes hide, revocation and unapproved clients list nothing", () => {
    const view = decisionView(contents[0]!);
    const alice = principal({ user: "https://as.example.com#alice", groups: ["finance"] });
    const r = filterList(view, { serverId: "srv_a", principal: alice, time }, "tools", listed.tools, { drifted: new Set([driftKey("srv_a", "tools", "transfer")]) });
    expect(r.kept.map((t) => (t as { name: string }).name)).toEqual(["balance", "export", "search", "get_ticket"]);
    expect(r.hidden).toEqual(expect.arrayContaining(["transfer (changed upstream)", "wipe (not allowed)", "unapproved (not approved)", "balance (changed upstream)", "search (changed upstream)"]));
    const revoked = decisionView({ ...contents[0]!, revocations: [{ tenantId: "ten_a", before: "2030-01-01T00:00:00Z" }] });
    expect(filterList(revoked, { serverId: "srv_a", principal: alice, time }, "tools", listed.tools)).toMatchObject({ kept: [], record: { decision: "deny", stage: "revoked" } });
    const gated = decisionView({ ...contents[0]!, clientApproval: ["ten_a"], approvedClients: [] });
    expect(filterList(gated, { serverId: "srv_a", principal: alice, time }, "prompts", listed.prompts)).toMatchObject({ kept: [], record: { decision: "deny", stage: "client" } });
    expect(filterList(view, { serverId: "srv_a", principal: alice, time }, "prompts", listed.prompts).kept).toEqual([prompts[0], prompts[1]]);
  });

  it("a list's entries do not fill the engine's decision memo (calls keep their places)", () => {
    // Bundle 1 has no @approval forbid (the approval stage's second evaluation is remembered).
    const view = decisionView({ ...contents[1]! });
    const alice = principal({ user: "https://as.example.com#alice", groups: ["finance"] });
    const before = view.engine.memoSize;
    expect(filterList(view, { serverId: "srv_a", principal: alice, time }, "tools", listed.tools).kept.length).toBeGreaterThan(0);
    expect(view.engine.memoSize).toBe(before);
  });

  it("a changed definition is seen as changed after the unchanged one was cached, and the cache goes with the bundle", () => {
    const content = contents[0]!;
    const alice = principal({ user: "https://as.example.com#alice" });
    const ok = toolDef("balance", {});
    expect(filterList(decisionView(content), { serverId: "srv_a", principal: alice, time }, "tools", [ok]).kept).toHaveLength(1);
    const changed = filterList(decisionView(content), { serverId: "srv_a", principal: alice, time }, "tools", [{ ...ok, annotations: { destructiveHint: true } }]);
    expect(changed.kept).toHaveLength(0);
    expect(changed.changed).toHaveLength(1);
    // Another bundle where the same text is not approved: no answer carried over.
    const other = decisionView({ ...content, catalogue: content.catalogue.map((e) => (e.name === "balance" ? { ...e, hash: "sha256:other" } : e)) });
    expect(filterList(other, { serverId: "srv_a", principal: alice, time }, "tools", [ok]).changed).toHaveLength(1);
  });
});
