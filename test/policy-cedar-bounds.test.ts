import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addTool } from "@/lib/catalog/service";
import { CEDAR_LIMITS, cedar, cedarReplacements, scanCedarText } from "@/lib/enforcement/cedar";
import { checkPolicy, createPolicy, policyTestInput, simulateDraft, simulateInput } from "@/lib/policy/service";
import { CedarIsolationError, CedarWorkerPool } from "@/lib/policy/cedar-worker";
import { confine, toJson } from "@/lib/policy/cedar-tools";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

// Issue 17.1: a tenant auditor's 463-byte policy with ~150 nested parentheses
// trapped cedar-wasm ("memory access out of bounds") and every later Cedar
// call of the process failed, for every tenant, until a restart.
const hostile = `permit (principal, action, resource) when { ${"(".repeat(150)}context.args has status${")".repeat(150)} };`.padEnd(463, " ");

const ALLOW_ALL = "permit (principal, action, resource);";
const wrap = (body: string) => `permit (principal, action, resource) when { ${body} };`;
/** Shapes Cedar recurses over, each `n` levels deep. */
const shapes: Record<string, (n: number) => string> = {
  parens: (n) => `${"(".repeat(n)}true${")".repeat(n)}`,
  and: (n) =>
    Array(n + 1)
      .fill("true")
      .join(" && "),
  or: (n) =>
    Array(n + 1)
      .fill("true")
      .join(" || "),
  attributes: (n) => `context${".a".repeat(n)}`,
  arithmetic: (n) =>
    `${Array(n + 1)
      .fill("1")
      .join(" + ")} == 1`,
  ifs: (n) => `${"if true then true else ".repeat(n)}true`,
  sets: (n) => `${"[".repeat(n)}1${"]".repeat(n)} == 1`,
  records: (n) => `${"{a:".repeat(n)}1${"}".repeat(n)} == 1`,
  comparisons: (n) => Array(n).fill('context.args has x && context.args.x == "a(b"').join(" || "),
};
const deepJson = (n: number): unknown => {
  let v: unknown = { Value: true };
  for (let i = 0; i < n; i++) v = { "&&": { left: v, right: { Value: true } } };
  return v;
};
const request = (policies: unknown, context: unknown = {}) =>
  ({ principal: { type: "User", id: "u" }, action: { type: "Action", id: "call_tool" }, resource: { type: "Tool", id: "t" }, context, policies, entities: [] }) as never;
const SCHEMA = "entity User; entity Tool; action call_tool appliesTo { principal: User, resource: Tool, context: { a?: { a?: Long } } };";

describe("Cedar input bounds (in-process engine)", () => {
  it("refuses over-deep text in every parse entry point before Cedar sees it, and the engine keeps working", () => {
    const before = cedarReplacements();
    for (const [name, shape] of Object.entries(shapes)) {
      for (const n of [150, 1000]) {
        const text = wrap(shape(n));
        const answers = {
          policySetTextToParts: cedar.policySetTextToParts(text),
          checkParsePolicySet: cedar.checkParsePolicySet({ staticPolicies: text }),
          checkParsePolicySetRecord: cedar.checkParsePolicySet({ staticPolicies: { p0: ALLOW_ALL, p1: text } }),
          policyToJson: cedar.policyToJson(text),
          formatPolicies: cedar.formatPolicies({ policyText: text }),
          validate: cedar.validate({ schema: SCHEMA, policies: { staticPolicies: text } }),
          isAuthorized: cedar.isAuthorized(request({ staticPolicies: text })),
          preparsePolicySet: cedar.preparsePolicySet(`deep-${name}-${n}`, { staticPolicies: { p: text } }),
        };
        for (const [entry, a] of Object.entries(answers)) {
          expect(a.type, `${name} ${n} ${entry}`).toBe("failure");
          expect(JSON.stringify(a), `${name} ${n} ${entry}`).toMatch(/nested (too deeply|more than)/);
        }
      }
    }
    // JSON entry points: a policy, a context, an entity and a schema nested past the bound.
    const policy = { effect: "permit", principal: { op: "All" }, action: { op: "All" }, resource: { op: "All" }, conditions: [{ kind: "when", body: deepJson(CEDAR_LIMITS.maxJsonDepth) }] };
    expect(cedar.policyToText(policy as never).type).toBe("failure");
    expect(cedar.checkParsePolicySet({ staticPolicies: { p: policy as never } }).type).toBe("failure");
    let ctx: unknown = 1;
    for (let i = 0; i < 200; i++) ctx = { a: ctx };
    expect(cedar.isAuthorized(request({ staticPolicies: ALLOW_ALL }, { a: ctx })).type).toBe("failure");
    expect(cedar.checkParseEntities({ entities: [{ uid: { type: "User", id: "u" }, attrs: { a: ctx as never }, parents: [] }] }).type).toBe("failure");
    let st: unknown = { type: "Long" };
    for (let i = 0; i < 200; i++) st = { type: "Record", attributes: { a: st } };
    expect(cedar.checkParseSchema({ "": { entityTypes: { U: { shape: st as never } }, actions: {} } } as never).type).toBe("failure");
    // Nothing reached Cedar: no trap, no replacement, and ordinary calls answer.
    expect(cedarReplacements()).toBe(before);
    expect(cedar.checkParsePolicySet({ staticPolicies: ALLOW_ALL }).type).toBe("success");
    const ok = cedar.isAuthorized(request({ staticPolicies: ALLOW_ALL }));
    expect(ok.type === "success" && ok.response.decision).toBe("allow");
  });

  it("accepts text at the bounds, and every entry point handles it without a trap (the bounds are below Cedar's limits)", () => {
    const before = cedarReplacements();
    for (const wrapIn of [0, 30]) {
      for (const [name, shape] of Object.entries(shapes)) {
        const at = (n: number) => wrap(`${"(".repeat(wrapIn)}${shape(n)}${")".repeat(wrapIn)}`);
        let n = 0;
        while (n < 400 && !scanCedarText(at(n + 1))) n++;
        const text = at(n);
        const label = `${name} ×${n} in ${wrapIn} parens`;
        expect(scanCedarText(at(n + 1)), label).not.toBeNull();
        expect(cedar.policySetTextToParts(text).type, label).toBe("success");
        expect(cedar.checkParsePolicySet({ staticPolicies: text }).type, label).toBe("success");
        const json = cedar.policyToJson(text);
        expect(json.type, label).toBe("success");
        if (json.type !== "success") continue;
        // What the compiler does with it: confine (JSON → text) and check the JSON form.
        const confined = {
          ...json.json,
          conditions: [...json.json.conditions, { kind: "when" as const, body: { "&&": { left: { "||": { left: { Value: true }, right: { Value: true } } }, right: { Value: true } } } as never }],
        };
        expect(cedar.policyToText(confined).type, label).toBe("success");
        expect(cedar.checkParsePolicySet({ staticPolicies: { p: confined } }).type, label).toBe("success");
        expect(cedar.formatPolicies({ policyText: text }).type, label).toBe("success");
        expect(cedar.validate({ schema: SCHEMA, policies: { staticPolicies: text } }).type, label).toBe("success");
        expect(cedar.isAuthorized(request({ staticPolicies: text })).type, label).toBe("success");
      }
    }
    expect(cedarReplacements()).toBe(before);
  });

  it("confines a policy to many tenants (a shared server's scope permits) within the bounds, and decides per tenant", () => {
    const tenants = Array.from({ length: 300 }, (_, i) => `ten_${i}`);
    const text = confine(toJson("permit (principal, action, resource);"), tenants, "srv_x");
    expect(scanCedarText(text)).toBeNull();
    const decide = (tenant: string) => {
      const entities = [
        { uid: { type: "User", id: "u" }, attrs: {}, parents: [{ type: "Tenant", id: tenant }] },
        { uid: { type: "Tool", id: "t" }, attrs: {}, parents: [{ type: "Server", id: "srv_x" }] },
      ];
      const a = cedar.isAuthorized({
        principal: { type: "User", id: "u" },
        action: { type: "Action", id: "call_tool" },
        resource: { type: "Tool", id: "t" },
        context: {},
        policies: { staticPolicies: text },
        entities,
      });
      return a.type === "success" ? a.response.decision : a.type;
    };
    expect(decide("ten_250")).toBe("allow");
    expect(decide("ten_other")).toBe("deny");
    // One tenant: the same text as before.
    expect(confine(toJson("permit (principal, action, resource);"), ["ten_a"], "srv_x")).toContain('principal in Tenant::"ten_a"');
  });

  it("the scanner skips string literals and comments, and reports the line and column of the bracket", () => {
    const quoted = wrap(`context.args has x && context.args.x == "${"(".repeat(500)}" // ${"[".repeat(500)}\n`);
    expect(scanCedarText(quoted)).toBeNull();
    const text = `permit (principal, action, resource)\nwhen {\n  ${"(".repeat(40)}true${")".repeat(40)}\n};`;
    const issue = scanCedarText(text)!;
    expect(issue.message).toMatch(/nested more than 32 levels/);
    // The 32nd open bracket on line 3 (2 spaces of indentation, after `when {`): column 3 + 31.
    expect(Buffer.from(text).subarray(0, issue.offset).toString().split("\n").length).toBe(3);
    expect(scanCedarText("x".repeat(CEDAR_LIMITS.maxTextBytes + 1))?.message).toMatch(/bytes; at most/);
  });

  it("a call that throws inside cedar-wasm drops the instance for a fresh one, and preparsed policy sets keep answering", () => {
    expect(cedar.preparsePolicySet("bounds-survivor", { staticPolicies: { p: ALLOW_ALL } }).type).toBe("success");
    const before = cedarReplacements();
    // A value whose third read throws: the guard's two reads pass, the read inside cedar-wasm's
    // conversion throws through WASM frames (as a trap or stack overflow would).
    let reads = 0;
    const call = {};
    Object.defineProperty(call, "staticPolicies", {
      enumerable: true,
      get: () => {
        if (++reads > 2) throw new RangeError("Maximum call stack size exceeded");
        return ALLOW_ALL;
      },
    });
    const a = cedar.checkParsePolicySet(call as never);
    expect(reads).toBeGreaterThan(2);
    expect(a.type).toBe("failure");
    expect(JSON.stringify(a)).toMatch(/was restarted/);
    expect(cedarReplacements()).toBe(before + 1);
    // The fresh instance never saw "bounds-survivor": the guard preparses it again on use.
    const d = cedar.statefulIsAuthorized({
      principal: { type: "User", id: "u" },
      action: { type: "Action", id: "call_tool" },
      resource: { type: "Tool", id: "t" },
      context: {},
      entities: [],
      preparsedPolicySetId: "bounds-survivor",
    });
    expect(d.type === "success" && d.response.decision).toBe("allow");
  });
});

describe("the isolated Cedar worker", () => {
  it("a real trap ends the worker's job and that worker only; the next job gets a fresh one", async () => {
    const pool = new CedarWorkerPool({ jobMs: 5000, queue: 4, heapMb: 64 });
    // Straight to the pool, without the bounds: the raw 150-level text traps cedar-wasm in the worker.
    await expect(pool.run([{ fn: "checkParsePolicySet", args: [{ staticPolicies: hostile }] }])).rejects.toBeInstanceOf(CedarIsolationError);
    expect(pool.restarts).toBe(1);
    const [again] = await pool.run([{ fn: "checkParsePolicySet", args: [{ staticPolicies: ALLOW_ALL }] }]);
    expect(again).toEqual({ type: "success" });
    // The process's own engine was never touched.
    expect(cedar.checkParsePolicySet({ staticPolicies: ALLOW_ALL }).type).toBe("success");
  });

  it("a job over its time budget is stopped, the event loop stays free meanwhile, and the queue is bounded", async () => {
    const pool = new CedarWorkerPool({ jobMs: 400, queue: 1, heapMb: 64 });
    // Warm the worker up so the budget measures the job, not the start.
    await pool.run([{ fn: "checkParsePolicySet", args: [{ staticPolicies: ALLOW_ALL }] }]);
    const big = Array.from({ length: 400 }, (_, i) => `@id("p${i}") ${wrap(shapes.comparisons!(10))}`).join("\n");
    // One call object repeated: structured cloning sends it once, so posting the job costs the main thread nothing.
    const slow = Array(200).fill({ fn: "validate" as const, args: [{ schema: SCHEMA, policies: { staticPolicies: big } }] });
    let maxLag = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 10);
      last = now;
    }, 10);
    const t0 = performance.now();
    const running = pool.run(slow);
    const queued = pool.run([{ fn: "checkParsePolicySet", args: [{ staticPolicies: ALLOW_ALL }] }]);
    await expectAppError(pool.run([{ fn: "checkParsePolicySet", args: [{ staticPolicies: ALLOW_ALL }] }]), "rate_limited");
    await expect(running).rejects.toThrow(/longer than 400 ms/);
    const stoppedAfter = performance.now() - t0;
    expect(await queued).toEqual([{ type: "success" }]);
    clearInterval(tick);
    expect(stoppedAfter).toBeLessThan(2000);
    expect(maxLag).toBeLessThan(200);
    expect(pool.restarts).toBe(1);
  });
});

describe("Cedar checks through the policy service", () => {
  let t: TestDb;
  let auditorA: MadeUser;
  let adminA: MadeUser;
  let adminB: MadeUser;
  let tenantA: string;
  let tenantB: string;
  let serverA: string;
  let serverB: string;

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    tenantA = (await makeTenant(t.db, owner.actor)).id;
    tenantB = (await makeTenant(t.db, owner.actor)).id;
    auditorA = await makeUser(t.db, { memberships: [[tenantA, "auditor"]] });
    adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
    adminB = await makeUser(t.db, { memberships: [[tenantB, "admin"]] });
    const make = async (admin: MadeUser, tenantId: string) => {
      const server = await createServer(
        admin.ctx,
        createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.bounds.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["tickets:read"] }),
      );
      await addTool(admin.ctx, server!.id, {
        name: "list_tickets",
        description: "list",
        inputSchema: { type: "object", properties: { status: { type: "string" } } },
        annotations: { readOnlyHint: true },
        risk: "low",
      });
      await putScopeMapping(admin.ctx, server!.id, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets"] } });
      return server!.id;
    };
    serverA = await make(adminA, tenantA);
    serverB = await make(adminB, tenantB);
  });
  afterAll(() => t.close());

  it("an auditor's 463-byte, 150-level policy is refused with its position, and every tenant's checks, saves and simulations keep working", async () => {
    expect(Buffer.byteLength(hostile)).toBe(463);
    const res = await checkPolicy(auditorA.ctx, { tenantId: tenantA, serverId: serverA, cedar: hostile });
    expect(res.issues).toHaveLength(1);
    expect(res.issues[0]!.message).toMatch(/nested more than 32 levels/);
    expect(res.issues[0]).toMatchObject({ line: 1, column: 44 + 32 });
    // Saving it is a 422 with the line and column.
    const refused = await expectAppError(
      createPolicy(adminA.ctx, { tenantId: tenantA, serverId: serverA, name: "deep", description: "", kind: "cedar", cedar: hostile, enabled: true }),
      "validation_failed",
    );
    expect(refused.issues?.[0]?.message).toMatch(/^line 1, column 76: brackets are nested more than 32 levels deep/);

    // Another tenant, same process, right after: check, save, simulate.
    const check = await checkPolicy(adminB.ctx, {
      tenantId: tenantB,
      serverId: serverB,
      cedar: 'permit (principal, action, resource) when { context.args has status && context.args.status == "open" };',
    });
    expect(check.issues).toEqual([]);
    expect(check.formatted).toContain("context.args.status");
    const saved = await createPolicy(adminB.ctx, {
      tenantId: tenantB,
      serverId: serverB,
      name: "no closed",
      description: "",
      kind: "cedar",
      cedar: 'forbid (principal, action, resource) when { context.args has status && context.args.status == "closed" };',
      enabled: true,
    });
    expect(saved!.id).toMatch(/^pol_/);
    const sim = await simulateDraft(adminB.ctx, {
      tenantId: tenantB,
      serverId: serverB,
      request: { user: "bob", groups: [], client: "c", scopes: ["tickets:read"], tool: "list_tickets", action: "call_tool", args: { status: "open" } },
    });
    expect(sim.decision).toBe("allow");
    const denied = await simulateDraft(adminB.ctx, {
      tenantId: tenantB,
      serverId: serverB,
      request: { user: "bob", groups: [], client: "c", scopes: ["tickets:read"], tool: "list_tickets", action: "call_tool", args: { status: "closed" } },
    });
    expect(denied.decision).toBe("deny");
    // And the auditor's own tenant still checks ordinary text.
    expect((await checkPolicy(auditorA.ctx, { tenantId: tenantA, serverId: serverA, cedar: ALLOW_ALL })).issues).toEqual([]);
  });

  it("refuses simulation and test requests whose arguments nest deeper than 16 levels", () => {
    let deep: unknown = "x";
    for (let i = 0; i < 200; i++) deep = { a: deep };
    const req = (args: Record<string, unknown>) => ({ user: "bob", scopes: ["tickets:read"], tool: "list_tickets", args });
    expect(simulateInput.safeParse({ tenantId: tenantB, serverId: serverB, request: req({ status: deep }) }).success).toBe(false);
    expect(policyTestInput.safeParse({ tenantId: tenantB, serverId: serverB, name: "deep", expected: "deny", request: req({ status: deep }) }).success).toBe(false);
    expect(simulateInput.safeParse({ tenantId: tenantB, serverId: serverB, request: req({ status: "open", tags: ["a"] }) }).success).toBe(true);
  });

  it("the rule editor's largest rule (50 argument conditions and every other part) still saves, compiles and decides", async () => {
    const props = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`a${i}`, { type: "string" }]));
    await addTool(adminA.ctx, serverA, { name: "wide", description: "50 arguments", inputSchema: { type: "object", properties: props }, annotations: {}, risk: "low" });
    const conditions = Array.from({ length: 50 }, (_, i) => ({ arg: `a${i}`, op: "eq" as const, value: "x" }));
    const rule = {
      effect: "forbid" as const,
      actions: ["call_tool" as const, "list_tools" as const],
      tools: ["wide"],
      principals: { users: ["bob"], groups: ["g"] },
      clients: ["c"],
      conditions,
      time: { fromHour: 22, toHour: 6, days: [0, 6] },
    };
    const saved = await createPolicy(adminA.ctx, { tenantId: tenantA, serverId: serverA, name: "widest rule", description: "", kind: "rule", rule, enabled: true }).catch((e: { issues?: unknown }) => {
      throw new Error(JSON.stringify(e.issues));
    });
    expect(saved!.cedar).toContain('context.args["a49"] == "x"');
    const sim = await simulateDraft(adminA.ctx, {
      tenantId: tenantA,
      serverId: serverA,
      request: { user: "bob", groups: [], client: "c", scopes: ["tickets:read"], tool: "list_tickets", action: "call_tool", args: {} },
    });
    expect(sim.decision).toBe("allow");
  });

  it("a long chain of conditions is refused like deep brackets; a policy just inside the bounds saves", async () => {
    const chain = wrap(Array(300).fill('context.args has status && context.args.status == "x"').join(" || "));
    const res = await checkPolicy(auditorA.ctx, { tenantId: tenantA, serverId: serverA, cedar: chain });
    expect(res.issues[0]!.message).toMatch(/nested too deeply/);
    const fine = wrap(Array(20).fill('context.args has status && context.args.status == "x"').join(" || "));
    expect((await checkPolicy(adminA.ctx, { tenantId: tenantA, serverId: serverA, cedar: fine })).issues).toEqual([]);
  });
});
