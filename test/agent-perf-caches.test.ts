/**
 * The caches of the gateway's hot path (issue 12) never change an answer:
 * the engine's decision memo is keyed by everything Cedar reads (arguments,
 * scopes, time to the second) and dies with its bundle; verified tokens are
 * remembered per installed bundle only, and every request is still decided
 * (revocation included) by decide().
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide, decisionView } from "@/lib/enforcement/decide";
import { MAX_MEMO_ENTRIES, PolicyEngine, preparsedPolicySets } from "@/lib/enforcement/engine";
import { TokenValidator } from "@/lib/enforcement/token";
import { VerifiedTokens, type TokenValidatorLike } from "@/agent/token";
import { bundleServer } from "./auth-server-helpers";
import { contentOf, policy, principal, snapshotOf, type ServerSpec } from "./decide-fixtures";
import { startIssuer, type Issuer } from "./agent-proc-harness";

const servers: ServerSpec[] = [{ id: "srv_a", tenantIds: ["ten_a"], tools: [{ name: "refund", properties: { amount: { type: "integer" } } }], mapping: { "t:w": ["refund"] } }];
const cutoff = Date.parse("2026-11-25T12:00:00Z");
const content = (extra = "") =>
  contentOf(
    snapshotOf(servers, [
      policy("pol_big", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 100 };`),
      policy("pol_late", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.time.epoch >= ${cutoff / 1000} ${extra} };`),
    ]),
  );

describe("decision memo", () => {
  const view = decisionView(content());
  const call = (amount: number, at: number, scopes = ["t:w"]) =>
    decide(view, { method: "tools/call", serverId: "srv_a", tool: "refund", principal: principal({ scopes }), args: { amount }, time: new Date(at) }).decision;

  it("answers as Cedar does for every argument, scope set and second, in any order", () => {
    const seq: [number, number, string[], string][] = [
      [5, cutoff - 1000, ["t:w"], "allow"],
      [500, cutoff - 1000, ["t:w"], "deny"],
      [5, cutoff - 1000, ["t:w"], "allow"],
      [5, cutoff, ["t:w"], "deny"],
      [5, cutoff - 1000, ["t:w"], "allow"],
      [5, cutoff - 1000, [], "deny"],
      [5, cutoff + 5000, ["t:w"], "deny"],
      [500, cutoff - 1000, ["t:w"], "deny"],
    ];
    for (let round = 0; round < 3; round++) for (const [amount, at, scopes, want] of seq) expect(call(amount, at, scopes)).toBe(want);
  });

  it("dies with its bundle: a new bundle's engine decides afresh", () => {
    expect(call(5, cutoff, ["t:w"])).toBe("deny");
    const later = decisionView(content("&& context.args has amount && context.args.amount > 1000"));
    expect(decide(later, { method: "tools/call", serverId: "srv_a", tool: "refund", principal: principal({ scopes: ["t:w"] }), args: { amount: 5 }, time: new Date(cutoff) }).decision).toBe("allow");
  });

  it("is forgotten on demand (a bundle that keeps the engine), and slices can be prepared ahead of any call", async () => {
    // cedar-wasm alone: preparing a slice preparses it there.
    const engine = Object.assign(new PolicyEngine(content('&& principal.sub == "prep"')), { jsEvaluator: false });
    const before = preparsedPolicySets();
    expect(await engine.prepareAll()).toBe(1);
    expect(preparsedPolicySets()).toBe(before + 1);
    // With the JS evaluator (the default) the slice is compiled for it, and cedar-wasm parses nothing until a request needs it.
    const js = new PolicyEngine(content('&& principal.sub == "prep-js"'));
    expect(await js.prepareAll()).toBe(1);
    expect(preparsedPolicySets()).toBe(before + 1);
    expect(await engine.prepareAll(() => true)).toBe(0);
    engine.decide({ action: "call_tool", serverId: "srv_a", tool: "refund", tenantId: "ten_a", user: "u", client: "c", scopes: [], args: { amount: 1 }, time: new Date(cutoff) });
    expect(engine.memoSize).toBe(1);
    engine.forgetDecisions();
    expect(engine.memoSize).toBe(0);
  });

  it("is bounded", () => {
    const engine = new PolicyEngine(content());
    for (let i = 0; i < MAX_MEMO_ENTRIES + 50; i++)
      engine.decide({ action: "call_tool", serverId: "srv_a", tool: "refund", tenantId: "ten_a", user: "u", client: "c", scopes: [], args: { amount: i }, time: new Date(cutoff - 1000) });
    expect(engine.memoSize).toBe(MAX_MEMO_ENTRIES);
  });
});

describe("verified tokens", () => {
  let issuer: Issuer;
  beforeAll(async () => {
    issuer = await startIssuer();
  });
  afterAll(async () => {
    await issuer.close();
  });

  it("skip only the signature check, per installed bundle: a new bundle verifies again, a bad token is never remembered", async () => {
    const server = bundleServer(
      [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"], claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope" } }],
      "http://127.0.0.1:3100/mcp",
      ["ten_demo"],
    );
    const real = new TokenValidator();
    let verified = 0;
    const counting: TokenValidatorLike = { validate: (t, s) => (verified++, real.validate(t, s)) };
    const tokens = new VerifiedTokens(counting);
    const token = await issuer.sign({ sub: "alice", tenant: "ten_demo", client_id: "c", scope: "a" }, server.resourceUri);
    const bundle1 = {};
    for (let i = 0; i < 5; i++) expect((await tokens.validate(token, server, bundle1)).ok).toBe(true);
    expect(verified).toBe(1);
    // A tampered signature is checked every time, and refused every time.
    const bad = `${token.slice(0, -4)}AAAA`;
    for (let i = 0; i < 3; i++) expect((await tokens.validate(bad, server, bundle1)).ok).toBe(false);
    expect(verified).toBe(4);
    // Another server (another audience) is another entry: refused on its own check.
    const other = { ...server, id: "srv_other", resourceUri: "http://127.0.0.1:3101/mcp" };
    expect((await tokens.validate(token, other, bundle1)).ok).toBe(false);
    // A new bundle (trust may have changed): verified again.
    const bundle2 = {};
    expect((await tokens.validate(token, server, bundle2)).ok).toBe(true);
    expect(verified).toBe(6);
    const untrusted = { ...server, trust: [] };
    expect((await tokens.validate(token, untrusted, {})).ok).toBe(false);
  });

  it("forgets a token at its exp", async () => {
    const server = bundleServer(
      [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"], claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope" } }],
      "http://127.0.0.1:3100/mcp",
      ["ten_demo"],
    );
    let now = Date.now();
    const real = new TokenValidator({ now: () => now, clockSkewSeconds: 0 });
    const tokens = new VerifiedTokens(real, () => now);
    const token = await issuer.sign({ sub: "alice", tenant: "ten_demo", client_id: "c", scope: "a" }, server.resourceUri, "20s");
    const bundle = {};
    expect((await tokens.validate(token, server, bundle)).ok).toBe(true);
    now += 21_000;
    expect((await tokens.validate(token, server, bundle)).ok).toBe(false);
  });
});
