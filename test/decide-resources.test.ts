import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { matchTemplate } from "@/lib/enforcement/catalogue-entry";
import { decide, decideOnHeaders, decisionView, driftKey, filterList, listFilter, type DecideRequest } from "@/lib/enforcement/decide";
import { compileOf, policy, principal } from "./decide-fixtures";
import { prompts, resources, snapshot, templates } from "./resource-fixtures";

const time = new Date("2026-11-25T12:00:00Z");

const readers = policy(
  "pol_readers",
  "ten_a",
  "srv_a",
  `permit (principal in Group::"readers", action in [Action::"read_resource", Action::"list_resources", Action::"list_resource_templates", Action::"get_prompt", Action::"list_prompts", Action::"complete"], resource);`,
);
const noPayroll = policy("pol_no_payroll", "ten_a", "srv_a", `forbid (principal, action, resource == Resource::"srv_a/file:///secrets/payroll.csv");`);
const noProdTickets = policy("pol_no_prod", "ten_a", "srv_a", `forbid (principal, action == Action::"read_resource", resource) when { context.args has project && context.args.project == "prod" };`);
const calmTone = policy(
  "pol_tone",
  "ten_a",
  "srv_a",
  `forbid (principal, action == Action::"get_prompt", resource == Prompt::"srv_a/summarize") when { context.args has tone && context.args.tone == "angry" };`,
);
// An existing tools policy written without an action: must still compile and keep its meaning.
const bigAmount = policy("pol_big", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`);

function built(policies = [readers, noPayroll, noProdTickets, calmTone, bigAmount], opts: { unapproved?: string[]; blocked?: string[] } = {}) {
  const c = compileOf(snapshot(policies, opts));
  expect(c.issues).toEqual([]);
  return decisionView(c.content);
}

const reader = principal({ groups: ["readers"] });
const ask = (view: ReturnType<typeof built>, over: Partial<DecideRequest>) => decide(view, { method: "resources/read", serverId: "srv_a", principal: reader, time, ...over });

describe("resources, templates and prompts under policy", () => {
  const view = built();

  it("the catalogue carries each kind as its own entity; tool entries are unchanged", () => {
    const kinds = view.content.catalogue.map((e) => `${e.kind ?? "tool"}:${e.name}`);
    expect(kinds).toContain("resource:file:///docs/handbook.md");
    expect(kinds).toContain("resourceTemplate:tickets://{project}/{id}");
    expect(kinds).toContain("prompt:summarize");
    expect(view.content.catalogue.find((e) => e.name === "get_ticket")).not.toHaveProperty("kind");
    expect(view.content.cedar.entities.map((e) => `${e.uid.type}::${e.uid.id}`)).toEqual(
      expect.arrayContaining(["Resource::srv_a/file:///docs/handbook.md", "ResourceTemplate::srv_a/tickets://{project}/{id}", "Prompt::srv_a/summarize", "Tool::srv_a/get_ticket"]),
    );
  });

  it("reads an approved resource when a permit allows; a forbid wins; default deny", () => {
    expect(ask(view, { name: "file:///docs/handbook.md" })).toMatchObject({ decision: "allow", stage: "policy", determining: ["pol_readers"] });
    expect(ask(view, { name: "file:///secrets/payroll.csv" })).toMatchObject({ decision: "deny", stage: "policy", determining: ["pol_no_payroll"] });
    expect(ask(view, { name: "file:///docs/handbook.md", principal: principal() })).toMatchObject({ decision: "deny", stage: "policy", determining: [], reason: "no policy allows this call" });
    for (const m of ["resources/subscribe", "resources/unsubscribe"])
      expect(ask(view, { method: m, name: "file:///secrets/payroll.csv" })).toMatchObject({ decision: "deny", determining: ["pol_no_payroll"] });
  });

  it("a URI that is not approved is denied at the catalogue; one matching an approved template is read through it with its variables", () => {
    expect(ask(view, { name: "file:///etc/passwd" })).toMatchObject({ decision: "deny", stage: "catalogue", reason: "the resource is not in the approved catalogue" });
    expect(ask(view, { name: undefined })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(ask(view, { name: "tickets://dev/T-1" })).toMatchObject({ decision: "allow", determining: ["pol_readers"] });
    expect(ask(view, { name: "tickets://prod/T-1" })).toMatchObject({ decision: "deny", determining: ["pol_no_prod"] });
    // A template variable never spans a path segment.
    expect(ask(view, { name: "tickets://dev/x/../../prod/T-1" })).toMatchObject({ decision: "deny", stage: "catalogue" });
  });

  it("gets a prompt with its arguments in context.args (typed as strings)", () => {
    const get = (args: Record<string, unknown>, name = "summarize") => decide(view, { method: "prompts/get", serverId: "srv_a", name, principal: reader, args, time });
    expect(get({ ticket: "T-1", tone: "calm" })).toMatchObject({ decision: "allow" });
    expect(get({ ticket: "T-1", tone: "angry" })).toMatchObject({ decision: "deny", determining: ["pol_tone"] });
    expect(get({ ticket: "T-1", tone: 5 })).toMatchObject({ decision: "deny", stage: "arguments" });
    expect(get({}, "unknown")).toMatchObject({ decision: "deny", stage: "catalogue", reason: "the prompt is not in the approved catalogue" });
  });

  it("completion is decided on the prompt or template it completes; without a ref type, every entry of that name must allow", () => {
    const complete = (name: string, completionRef?: "ref/prompt" | "ref/resource", args: Record<string, unknown> = {}) =>
      decide(view, { method: "completion/complete", serverId: "srv_a", name, completionRef, principal: reader, args, time });
    expect(complete("summarize", "ref/prompt")).toMatchObject({ decision: "allow" });
    expect(complete("tickets://{project}/{id}", "ref/resource")).toMatchObject({ decision: "allow" });
    expect(complete("summarize", "ref/resource")).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(complete("summarize")).toMatchObject({ decision: "allow" });
    // Policies of other actions do not apply to completion; one on `complete` does, with the arguments.
    expect(complete("tickets://{project}/{id}", "ref/resource", { project: "prod" })).toMatchObject({ decision: "allow" });
    const v = built([
      readers,
      policy("pol_no_prod_complete", "ten_a", "srv_a", `forbid (principal, action == Action::"complete", resource) when { context.args has project && context.args.project == "prod" };`),
    ]);
    expect(
      decide(v, { method: "completion/complete", serverId: "srv_a", name: "tickets://{project}/{id}", completionRef: "ref/resource", principal: reader, args: { project: "prod" }, time }),
    ).toMatchObject({ decision: "deny", determining: ["pol_no_prod_complete"] });
  });

  it("lists pass to their filter; server/discover passes (filtered); logging/setLevel and unknown methods are denied", () => {
    for (const m of ["resources/list", "resources/templates/list", "prompts/list", "server/discover"]) expect(ask(view, { method: m })).toMatchObject({ decision: "allow", stage: "list" });
    expect(ask(view, { method: "logging/setLevel" })).toMatchObject({ decision: "deny", stage: "method" });
    expect(ask(view, { method: "logging/setLevel" }).reason).toMatch(/credentials/);
    for (const m of ["tasks/result", "sampling/createMessage", "resources/write", "Tools/call"]) expect(ask(view, { method: m })).toMatchObject({ decision: "deny", stage: "method" });
  });

  it("subscriptions/listen decides every resource subscription; one denial denies it", () => {
    const listen = (uris?: string[]) => ask(view, { method: "subscriptions/listen", resourceSubscriptions: uris });
    expect(listen()).toMatchObject({ decision: "allow" });
    expect(listen(["file:///docs/handbook.md", "tickets://dev/1"])).toMatchObject({ decision: "allow", determining: ["pol_readers"] });
    expect(listen(["file:///docs/handbook.md", "file:///secrets/payroll.csv"])).toMatchObject({ decision: "deny", determining: ["pol_no_payroll"] });
    expect(listen(["file:///nope"])).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(decideOnHeaders(view, { method: "subscriptions/listen", serverId: "srv_a", principal: reader, time })).toEqual({ final: null });
  });

  it("a resource or prompt that is unapproved or blocked is denied; drift denies and is keyed per kind", () => {
    const v = built([readers], { unapproved: ["summarize"], blocked: ["file:///docs/handbook.md"] });
    expect(decide(v, { method: "prompts/get", serverId: "srv_a", name: "summarize", principal: reader, args: {}, time })).toMatchObject({ decision: "deny", stage: "catalogue" });
    expect(ask(v, { name: "file:///docs/handbook.md" })).toMatchObject({ decision: "deny", stage: "catalogue" });
    const drifted = new Set([driftKey("srv_a", "prompts", "escalate"), driftKey("srv_a", "resourceTemplates", "tickets://{project}/{id}")]);
    expect(decide(view, { method: "prompts/get", serverId: "srv_a", name: "escalate", principal: reader, args: {}, time }, { drifted })).toMatchObject({ decision: "deny", stage: "drift" });
    expect(ask(view, { name: "tickets://dev/1" })).toMatchObject({ decision: "allow" });
    expect(decide(view, { method: "resources/read", serverId: "srv_a", name: "tickets://dev/1", principal: reader, time }, { drifted })).toMatchObject({ decision: "deny", stage: "drift" });
    // A tool named like a prompt is another entry: srv_b's tool "summarize" is not the prompt.
    expect(driftKey("srv_a", "tools", "summarize")).not.toBe(driftKey("srv_a", "prompts", "summarize"));
  });

  it("tenants never cross: another tenant's policies do not apply, a tenant without the server is denied", () => {
    const other = principal({ tenantId: "ten_b", groups: ["readers"] });
    expect(ask(view, { name: "file:///docs/handbook.md", principal: other })).toMatchObject({ decision: "deny", stage: "policy", determining: [] });
    expect(decide(view, { method: "resources/read", serverId: "srv_b", name: "file:///docs/handbook.md", principal: principal({ groups: ["readers"] }), time })).toMatchObject({
      decision: "deny",
      stage: "server",
    });
    expect(decide(view, { method: "prompts/get", serverId: "srv_b", name: "summarize", principal: other, args: {}, time })).toMatchObject({ decision: "deny", stage: "catalogue" });
  });

  it("existing tools policies keep their meaning", () => {
    const call = (args: Record<string, unknown>) => decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: principal({ scopes: ["tickets:read"] }), args, time });
    expect(call({ amount: 5 })).toMatchObject({ decision: "allow" });
    expect(call({ amount: 500 })).toMatchObject({ decision: "deny", determining: ["pol_big"] });
    // The reader group's permit names no tool action: no tool call through it.
    expect(decide(view, { method: "tools/call", serverId: "srv_a", tool: "get_ticket", principal: reader, args: {}, time })).toMatchObject({ decision: "deny" });
  });

  it("filters resources, templates and prompts lists like tools", () => {
    const req = { serverId: "srv_a", principal: reader, time };
    const listed = [...resources, { uri: "file:///new.txt", name: "new" }, { ...resources[0]!, description: "changed" }];
    const r = filterList(view, req, "resources", listed);
    expect(r.kept.map((x) => x.uri)).toEqual(["file:///docs/handbook.md"]);
    expect(r.hidden).toEqual(["file:///secrets/payroll.csv (not allowed)", "file:///new.txt (not approved)", "file:///docs/handbook.md (changed upstream)"]);
    expect(r.changed).toEqual([expect.objectContaining({ kind: "resources", name: "file:///docs/handbook.md" })]);
    expect(filterList(view, req, "resourceTemplates", templates).kept).toHaveLength(1);
    expect(filterList(view, req, "prompts", prompts).kept.map((p) => p.name)).toEqual(["summarize", "escalate"]);
    expect(filterList(view, { ...req, principal: principal() }, "prompts", prompts)).toMatchObject({
      kept: [],
      record: { decision: "allow", reason: "listed 0 of 2 prompts; hidden: summarize (not allowed), escalate (not allowed)" },
    });
    // The tools list is unchanged: listFilter is filterList on tools.
    expect(listFilter(view, { ...req, principal: principal({ scopes: ["tickets:read"] }) }, [{ name: "summarize", inputSchema: { type: "object" } }]).hidden).toEqual(["summarize (not approved)"]);
  });

  it("a policy naming an entry that is not in the catalogue is a compile issue", () => {
    const c = compileOf(snapshot([policy("pol_x", "ten_a", "srv_a", `permit (principal, action, resource == Prompt::"srv_a/nope");`)]));
    expect(c.issues.map((i) => i.message)).toEqual(["Policy names prompt srv_a/nope, which is not in the catalogue of srv_a"]);
  });
});

describe("URI templates", () => {
  it("matches simple, reserved and query expressions without spanning segments", () => {
    expect(matchTemplate("tickets://{project}/{id}", "tickets://dev/T-1")).toEqual({ project: "dev", id: "T-1" });
    expect(matchTemplate("tickets://{project}/{id}", "tickets://dev/T-1/x")).toBeNull();
    expect(matchTemplate("file:///{+path}", "file:///a/b/c.txt")).toEqual({ path: "a/b/c.txt" });
    expect(matchTemplate("search://q{?term,limit}", "search://q?term=a%20b&limit=5")).toEqual({ term: "a b", limit: "5" });
    expect(matchTemplate("x://{a}{b}", "x://12")).toBeNull();
    expect(matchTemplate("x://{a", "x://1")).toBeNull();
  });

  it("stays fast on hostile input", () => {
    const t0 = performance.now();
    matchTemplate(`x://${"{a}-".repeat(16)}`, `x://${"-".repeat(4000)}`);
    expect(performance.now() - t0).toBeLessThan(50);
  });
});

describe("liveDrift (the agent's drift check)", () => {
  it("names every approved entry whose live definition changed, keyed per kind", async () => {
    const { liveDrift } = await import("@/lib/enforcement/decide");
    const c = compileOf(snapshot([]));
    const view = decisionView(c.content);
    const changed = liveDrift(view, "srv_a", {
      resources: [resources[0], { ...resources[1]!, description: "now with salaries" }],
      prompts: [{ ...prompts[0]!, arguments: [{ name: "ticket", required: true }, { name: "tone" }, { name: "cc" }] }, prompts[1]],
      resourceTemplates: [{ uriTemplate: "other://{x}", name: "new" }],
    });
    expect(changed.map((x) => x.key)).toEqual([driftKey("srv_a", "resources", "file:///secrets/payroll.csv"), driftKey("srv_a", "prompts", "summarize")]);
  });
});

describe("rule-editor rules on resources, templates and prompts", () => {
  it("compile to the target's entity type and actions, and decide like Cedar written by hand", async () => {
    const { compileRule, policyRuleSchema } = await import("@/lib/policy/rule");
    const rule = policyRuleSchema.parse({
      effect: "permit",
      target: "prompt",
      actions: ["get_prompt", "list_prompts"],
      tools: ["summarize"],
      principals: { groups: ["readers"] },
      conditions: [{ arg: "tone", op: "neq", value: "angry" }],
    });
    const text = compileRule(rule, "srv_a", { name: "readers summarize" });
    expect(text).toContain(`resource in [Prompt::"srv_a/summarize"]`);
    const forbidTemplate = policyRuleSchema.parse({
      effect: "forbid",
      target: "resourceTemplate",
      actions: ["read_resource"],
      tools: ["tickets://{project}/{id}"],
      conditions: [{ arg: "project", op: "eq", value: "prod" }],
    });
    const c = compileOf(
      snapshot([
        { ...policy("pol_rule", "ten_a", "srv_a", text), kind: "rule" },
        policy("pol_read", "ten_a", "srv_a", `permit (principal in Group::"readers", action == Action::"read_resource", resource);`),
        { ...policy("pol_rule2", "ten_a", "srv_a", compileRule(forbidTemplate, "srv_a", { name: "no prod" })), kind: "rule" },
      ]),
    );
    expect(c.issues).toEqual([]);
    const view = decisionView(c.content);
    const get = (args: Record<string, unknown>) => decide(view, { method: "prompts/get", serverId: "srv_a", name: "summarize", principal: reader, args, time });
    expect(get({ tone: "calm" })).toMatchObject({ decision: "allow", determining: ["pol_rule"] });
    expect(get({ tone: "angry" })).toMatchObject({ decision: "deny" });
    expect(filterList(view, { serverId: "srv_a", principal: reader, time }, "prompts", prompts).kept.map((p) => p.name)).toEqual(["summarize"]);
    expect(ask(view, { name: "tickets://prod/1" })).toMatchObject({ decision: "deny", determining: ["pol_rule2"] });
    expect(ask(view, { name: "tickets://dev/1" })).toMatchObject({ decision: "allow" });
  });

  it("refuses an action that does not apply to the target, and a tool name check only for tools", async () => {
    const { policyRuleSchema } = await import("@/lib/policy/rule");
    const bad = policyRuleSchema.safeParse({ effect: "permit", target: "resource", actions: ["call_tool"], tools: ["file:///a"] });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.message)).toEqual(["call_tool does not apply to resources"]);
    expect(policyRuleSchema.safeParse({ effect: "permit", actions: ["call_tool"], tools: ["file:///a"] }).success).toBe(false);
    expect(policyRuleSchema.safeParse({ effect: "permit", target: "resource", actions: ["read_resource"], tools: ["file:///a"] }).success).toBe(true);
  });
});

describe("properties over resources and prompts (fast-check, fixed seed)", () => {
  const POOL = [
    { id: "pol_a_readers", tenant: "ten_a", permit: true, text: `permit (principal in Group::"readers", action, resource);` },
    { id: "pol_a_payroll", tenant: "ten_a", permit: false, text: `forbid (principal, action, resource == Resource::"srv_a/file:///secrets/payroll.csv");` },
    { id: "pol_a_prod", tenant: "ten_a", permit: false, text: `forbid (principal, action == Action::"read_resource", resource) when { context.args has project && context.args.project == "prod" };` },
    { id: "pol_a_prompts", tenant: "ten_a", permit: true, text: `permit (principal, action in [Action::"get_prompt", Action::"list_prompts"], resource);` },
    { id: "pol_b_all", tenant: "ten_b", permit: true, text: `permit (principal, action, resource);` },
  ];
  const views = Array.from({ length: 1 << POOL.length }, (_, mask) => {
    const chosen = POOL.filter((_, i) => mask & (1 << i));
    const c = compileOf(snapshot(chosen.map((p) => policy(p.id, p.tenant, "srv_a", p.text))));
    expect(c.issues).toEqual([]);
    return { view: decisionView(c.content), chosen };
  });
  const METHODS_NAMES: [string, string][] = [
    ["resources/read", "file:///docs/handbook.md"],
    ["resources/read", "file:///secrets/payroll.csv"],
    ["resources/read", "tickets://prod/1"],
    ["resources/read", "tickets://dev/1"],
    ["resources/subscribe", "file:///secrets/payroll.csv"],
    ["prompts/get", "summarize"],
    ["completion/complete", "summarize"],
    ["completion/complete", "tickets://{project}/{id}"],
    ["resources/read", "file:///etc/passwd"],
  ];

  it("default deny, a forbid wins, and no tenant's policy decides another tenant's request", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: views.length - 1 }),
        fc.constantFrom(...METHODS_NAMES),
        fc.constantFrom("ten_a", "ten_b"),
        fc.subarray(["readers"]),
        (v, [method, name], tenantId, groups) => {
          const { view, chosen } = views[v]!;
          const d = decide(view, { method, serverId: "srv_a", name, principal: principal({ tenantId, groups }), args: { project: "prod", tone: "calm" }, time });
          const mine = chosen.filter((p) => p.tenant === tenantId);
          // Every policy that determined the answer is the request's own tenant's.
          for (const id of d.determining) expect(mine.map((p) => p.id)).toContain(id);
          // Default deny: no permit of this tenant, no allow.
          if (!mine.some((p) => p.permit)) expect(d.decision).toBe("deny");
          // A forbid wins: the payroll forbid denies every action on payroll for ten_a.
          if (tenantId === "ten_a" && name === "file:///secrets/payroll.csv" && mine.some((p) => p.id === "pol_a_payroll"))
            expect(d).toMatchObject({ decision: "deny", determining: ["pol_a_payroll"] });
          if (d.decision === "allow") expect(d.determining.length).toBeGreaterThan(0);
        },
      ),
      { seed: 20261206, numRuns: 600 },
    );
  });
});

describe("a resource's policies hold whatever the URI's spelling", () => {
  it("a forbid on an approved resource is not sidestepped through a broad template by %-escapes, // or ..", async () => {
    const { entryHash: hashOf, normalizeUri } = await import("@/lib/enforcement/catalogue-entry");
    const snap = snapshot([
      policy("pol_all", "ten_a", "srv_a", `permit (principal, action == Action::"read_resource", resource);`),
      policy("pol_no_payroll", "ten_a", "srv_a", `forbid (principal, action, resource == Resource::"srv_a/file:///secrets/payroll.csv");`),
    ]);
    const broad = { uriTemplate: "file:///{+path}", name: "any file" };
    snap.servers[0]!.tools.push({
      kind: "resourceTemplate",
      name: broad.uriTemplate,
      risk: "high",
      blocked: false,
      approved: { hash: hashOf("resourceTemplate", broad), title: null, description: "", annotations: {}, inputSchema: { type: "object" }, label: broad.name, mimeType: null },
    });
    const c = compileOf(snap);
    expect(c.issues).toEqual([]);
    const view = decisionView(c.content);
    const read = (uri: string) => decide(view, { method: "resources/read", serverId: "srv_a", name: uri, principal: principal(), time });
    expect(read("file:///docs/anything.txt")).toMatchObject({ decision: "allow" });
    for (const uri of [
      "file:///secrets/payroll.csv",
      "file:///secrets/%70ayroll.csv",
      "file:///secrets//payroll.csv",
      "file:///docs/../secrets/payroll.csv",
      "file:///secrets/./payroll.csv",
      "FILE:///secrets/payroll.csv",
    ]) {
      expect(read(uri), uri).toMatchObject({ decision: "deny", determining: ["pol_no_payroll"] });
    }
    expect(normalizeUri("HTTPS://Example.COM/a/./b/../c//d?x=%7e")).toBe("https://example.com/a/c/d?x=~");
  });
});
