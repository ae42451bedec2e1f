/**
 * decideOnHeaders() against decide(): a decision taken on the method and name
 * alone (the 2026-07-28 Mcp-Method / Mcp-Name headers) must be the decision
 * decide() takes with the body, whatever the body's arguments are. Random
 * policy sets (some reading context.args, some not, approval forbids), random
 * methods, names, principals and arguments; fixed seed.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide, decideOnHeaders, decisionView, type DecideRequest, type DecisionView } from "@/lib/enforcement/decide";
import { compileOf, policy, principal } from "./decide-fixtures";
import { snapshot } from "./resource-fixtures";

const SEED = 20261206;

const POOL = [
  `permit (principal in Group::"readers", action, resource);`,
  `permit (principal, action in [Action::"read_resource", Action::"get_prompt", Action::"complete"], resource) when { context.scopes.contains("r") };`,
  `forbid (principal, action, resource == Resource::"srv_a/file:///secrets/payroll.csv");`,
  `forbid (principal, action == Action::"read_resource", resource) when { context.args has project && context.args.project == "prod" };`,
  `forbid (principal, action == Action::"get_prompt", resource == Prompt::"srv_a/summarize") when { context.args has tone && context.args.tone == "angry" };`,
  `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`,
  `forbid (principal, action == Action::"call_tool", resource) when { context.client == "bad" };`,
  `@approval("leads") forbid (principal, action == Action::"call_tool", resource == Tool::"srv_a/get_ticket");`,
  `forbid (principal in Group::"interns", action, resource) when { context.time.hour > 20 };`,
  `permit (principal, action == Action::"get_prompt", resource) when { context.args has ticket && context.args.ticket == "T-1" };`,
  `permit (principal, action in [Action::"call_tool", Action::"complete"], resource) when { context.args has id && context.args.id == "T-1" };`,
];

// A handful of bundles: every subset would be 2^9; these cover readers and non-readers of args.
const SETS = [[0], [0, 2], [0, 3], [0, 4], [0, 5], [1, 2, 6], [0, 7], [0, 2, 3, 4, 5, 6, 7, 8], [1], [], [9, 10], [9, 10, 2, 6]];
const views: DecisionView[] = SETS.map((set) => {
  const c = compileOf(snapshot(set.map((i) => policy(`pol_${i}`, "ten_a", "srv_a", POOL[i]!))));
  expect(c.issues).toEqual([]);
  return decisionView(c.content);
});

const METHODS = [
  "tools/call",
  "tools/list",
  "resources/read",
  "resources/subscribe",
  "resources/list",
  "resources/templates/list",
  "prompts/get",
  "prompts/list",
  "completion/complete",
  "subscriptions/listen",
  "server/discover",
  "ping",
  "initialize",
  "logging/setLevel",
  "tasks/get",
  "notifications/cancelled",
];
const NAMES = ["get_ticket", "summarize", "escalate", "file:///docs/handbook.md", "file:///secrets/payroll.csv", "tickets://{project}/{id}", "tickets://prod/1", "tickets://dev/1", "nope", ""];
const argValue = fc.oneof(
  fc.constantFrom("prod", "dev", "angry", "calm", "T-1", "T-1", "T-1"),
  fc.integer({ min: -5, max: 500 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 2 }),
);
const args = fc.dictionary(fc.constantFrom("amount", "id", "id", "tone", "ticket", "ticket", "project", "other", "__proto__"), argValue, { maxKeys: 4 });

// Names that fit the method most of the time (a random name would mostly stop at the catalogue).
const NAMES_OF: Record<string, string[]> = {
  "tools/call": ["get_ticket"],
  "prompts/get": ["summarize", "escalate"],
  "completion/complete": ["summarize", "tickets://{project}/{id}"],
  "resources/read": ["file:///docs/handbook.md", "file:///secrets/payroll.csv", "tickets://prod/1", "tickets://dev/1"],
  "resources/subscribe": ["file:///secrets/payroll.csv", "tickets://prod/1"],
};
const CALLS = Object.keys(NAMES_OF);
const methodAndName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...CALLS).chain((m) => fc.record({ method: fc.constant(m), name: fc.constantFrom(...NAMES_OF[m]!) })) },
  { weight: 1, arbitrary: fc.record({ method: fc.constantFrom(...METHODS), name: fc.option(fc.constantFrom(...NAMES), { nil: undefined }) }) },
);

const request = fc.record({
  view: fc.integer({ min: 0, max: views.length - 1 }),
  mn: methodAndName,
  serverId: fc.constantFrom("srv_a", "srv_a", "srv_a", "srv_b", "srv_x"),
  tenantId: fc.constantFrom("ten_a", "ten_a", "ten_a", "ten_b", "ten_c"),
  groups: fc.subarray(["readers", "interns"]),
  scopes: fc.subarray(["r", "tickets:read"]),
  client: fc.constantFrom("cli", "bad"),
  completionRef: fc.option(fc.constantFrom("ref/prompt" as const, "ref/resource" as const), { nil: undefined }),
  hour: fc.integer({ min: 0, max: 23 }),
  bodies: fc.array(args, { minLength: 1, maxLength: 4 }),
});

describe("decideOnHeaders never disagrees with decide() on the body", () => {
  it("a final decision is decide()'s for every body; null only when the body matters or may", () => {
    let finals = 0;
    let nulls = 0;
    fc.assert(
      fc.property(request, (r) => {
        const view = views[r.view]!;
        const time = new Date(`2026-11-25T${String(r.hour).padStart(2, "0")}:00:00Z`);
        const base: Omit<DecideRequest, "args"> = {
          method: r.mn.method,
          serverId: r.serverId,
          name: r.mn.name,
          completionRef: r.completionRef,
          principal: principal({ tenantId: r.tenantId, groups: r.groups, scopes: r.scopes, client: r.client }),
          time,
        };
        const h = decideOnHeaders(view, base);
        if (h.final === null) {
          nulls++;
          return;
        }
        finals++;
        for (const body of r.bodies) {
          const d = decide(view, { ...base, args: body });
          expect(d.decision, `${r.mn.method} ${r.mn.name} ${JSON.stringify(body)}: headers said ${h.final.reason}, body: ${d.reason}`).toBe(h.final.decision);
          // A denial before Cedar is the same denial; a Cedar denial may come earlier, at the argument types.
          if (h.final.decision === "deny" && h.final.stage !== "policy") expect(d.stage).toBe(h.final.stage);
        }
      }),
      { seed: SEED, numRuns: 1500 },
    );
    // Both outcomes occur (the property is not vacuous).
    expect(finals).toBeGreaterThan(300);
    expect(nulls).toBeGreaterThan(20);
  });

  it("a denied call is decided on headers alone when no policy reads arguments; one a forbid on arguments may deny waits for the body", () => {
    const noArgs = views[1]!; // readers permit + payroll forbid
    const p = principal({ groups: [] });
    expect(decideOnHeaders(noArgs, { method: "tools/call", serverId: "srv_a", name: "get_ticket", principal: p, time: new Date() }).final).toMatchObject({ decision: "deny", stage: "policy" });
    expect(
      decideOnHeaders(noArgs, { method: "resources/read", serverId: "srv_a", name: "file:///secrets/payroll.csv", principal: principal({ groups: ["readers"] }), time: new Date() }).final,
    ).toMatchObject({ decision: "deny", determining: ["pol_2"] });
    // Allowed, but srv_a's tools type arguments: a body of the wrong type would be denied, so the body decides.
    expect(decideOnHeaders(noArgs, { method: "tools/call", serverId: "srv_a", name: "get_ticket", principal: principal({ groups: ["readers"] }), time: new Date() }).final).toBeNull();
    const amounts = views[4]!;
    expect(decideOnHeaders(amounts, { method: "tools/call", serverId: "srv_a", name: "get_ticket", principal: principal({ groups: ["readers"] }), time: new Date() }).final).toBeNull();
    // A resource read carries no body arguments: final either way.
    expect(decideOnHeaders(views[2]!, { method: "resources/read", serverId: "srv_a", name: "tickets://prod/1", principal: principal({ groups: ["readers"] }), time: new Date() }).final).toMatchObject({
      decision: "deny",
      determining: ["pol_3"],
    });
  });
});
