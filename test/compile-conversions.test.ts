import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { compileConversions, fleetServers, fleets } from "@/db/schema";
import type { ConversionStore, RegistrySnapshot } from "@/lib/bundles/compile";
import { loadConversions, saveConversions } from "@/lib/bundles/conversions";
import { loadSnapshot } from "@/lib/bundles/snapshot";
import { addTool } from "@/lib/catalog/service";
import { newId } from "@/lib/ids";
import { createPolicy, updatePolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { policy, snapshotOf, type ServerSpec } from "./decide-fixtures";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { eq } from "drizzle-orm";

/**
 * lib/bundles/compile.ts with stored conversions (lib/bundles/conversions.ts): the first compile of
 * a process reads them; the bundle is the same, byte for byte; a stored value is never used for a
 * changed text, tenant, server or schema. Each compile here runs in a fresh copy of the module (no
 * conversion remembered in the process), as the first compile after a start does.
 */
const manifest = { fleetId: "flt_t", revision: 1, parentRevision: null, createdAt: "2026-01-01T00:00:00.000Z" };

async function freshCompile(snap: RegistrySnapshot, store?: ConversionStore) {
  vi.resetModules();
  const { compileBundle } = await import("@/lib/bundles/compile");
  return compileBundle(snap, manifest, { store });
}

class MapStore implements ConversionStore {
  map = new Map<string, string>();
  reads = 0;
  get(key: string) {
    const v = this.map.get(key);
    if (v !== undefined) this.reads++;
    return v;
  }
  set(key: string, value: string) {
    this.map.set(key, value);
  }
}

const servers: ServerSpec[] = [
  { id: "srv_a", tenantIds: ["ten_a", "ten_b"], tools: [{ name: "transfer", properties: { amount: { type: "integer" }, note: { type: "string" } } }], mapping: { bank: ["transfer"] } },
  { id: "srv_b", tenantIds: ["ten_a", "ten_b"], tools: [{ name: "transfer", properties: { amount: { type: "integer" } } }], mapping: {} },
];
const forbid = `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 10 };`;
const permit = `@id("p")\npermit (principal, action == Action::"call_tool", resource == Tool::"srv_a/transfer") when { context.scopes.contains("bank") };`;
const policies = [
  policy("pol_1", "ten_a", "srv_a", forbid),
  policy("pol_2", "ten_b", "srv_a", permit),
  policy("pol_3", "ten_a", "srv_b", forbid),
  policy("pol_4", "ten_b", "srv_a", `${forbid}\n${permit}`),
];

/** Every stored value replaced by a wrong one of its kind: any reuse shows in the bundle or its issues. */
function poisoned(store: MapStore, kinds: ("json" | "confined" | "valid")[] = ["confined", "valid"]): MapStore {
  const p = new MapStore();
  const other = `permit (principal, action, resource) when { true };`;
  for (const k of store.map.keys())
    if (!kinds.some((kind) => k.startsWith(`${kind}:`))) p.map.set(k, store.map.get(k)!);
    else
      p.map.set(
        k,
        k.startsWith("json:")
          ? JSON.stringify({ effect: "permit", principal: { op: "All" }, action: { op: "All" }, resource: { op: "All" }, conditions: [] })
          : k.startsWith("confined:")
            ? other
            : "ok",
      );
  return p;
}

describe("compile: stored conversions", () => {
  it("a compile from stored conversions gives the same bundle, byte for byte, as one without, and reads them instead of converting", async () => {
    const snap = snapshotOf(servers, policies);
    const without = await freshCompile(snap);
    expect(without.issues).toEqual([]);
    const store = new MapStore();
    const filling = await freshCompile(snap, store);
    expect(JSON.stringify(filling)).toBe(JSON.stringify(without));
    // json + confined for 4 policy texts and 1 scope mapping (pol_4's two parts among them), and one validation per confined text.
    expect([...store.map.keys()].filter((k) => k.startsWith("json:")).length).toBe(3);
    expect([...store.map.keys()].filter((k) => k.startsWith("valid:")).length).toBe(new Set(Object.values(without.content.cedar.policies)).size);
    const fromStore = await freshCompile(snap, store);
    expect(store.reads).toBeGreaterThanOrEqual(store.map.size);
    expect(JSON.stringify(fromStore)).toBe(JSON.stringify(without));
    // The store is what the compile used: a marked stored text shows in the bundle.
    const marked = new MapStore();
    for (const [k, v] of store.map) marked.map.set(k, k.startsWith("confined:") ? v.replace("context.args.amount > 10", "context.args.amount > 11") : v);
    expect(JSON.stringify((await freshCompile(snap, marked)).content)).toContain("context.args.amount > 11");
  });

  it("a changed tenant, server or text never meets a stored conversion of another", async () => {
    const store = new MapStore();
    // No scope mappings here: every stored value is one this compile must not use.
    const plain = servers.map((x) => ({ ...x, mapping: {} }));
    await freshCompile(snapshotOf(plain, policies), store);
    const bad = poisoned(store);
    // Same texts, each for a (tenant, server) it was not stored for: the forbid for ten_b on srv_b (stored: ten_a on srv_b,
    // ten_b on srv_a), the permit for ten_a (stored: ten_b). A key without the tenant or the server would meet a poisoned value.
    const moved = snapshotOf(plain, [policy("pol_1", "ten_b", "srv_b", forbid), policy("pol_2", "ten_a", "srv_a", permit)]);
    const expected = await freshCompile(moved);
    const got = await freshCompile(moved, bad);
    expect(JSON.stringify(got)).toBe(JSON.stringify(expected));
    expect(got.content.cedar.policies.pol_1).toContain('Tenant::"ten_b"');
    expect(got.content.cedar.policies.pol_1).toContain('Server::"srv_b"');
    expect(got.content.cedar.policies.pol_2).toContain('Tenant::"ten_a"');
    expect(got.content.cedar.policies.pol_2).not.toContain('Tenant::"ten_b"');
    // A changed text.
    const edited = snapshotOf(plain, [policy("pol_1", "ten_a", "srv_a", forbid.replace("> 10", "> 20"))]);
    const e = await freshCompile(edited, poisoned(store, ["json", "confined", "valid"]));
    expect(e.content.cedar.policies.pol_1).toContain("> 20");
    expect(JSON.stringify(e)).toBe(JSON.stringify(await freshCompile(edited)));
  });

  it("a changed schema validates again: a text valid before is refused when its argument changes type", async () => {
    const store = new MapStore();
    await freshCompile(snapshotOf(servers, policies), store);
    const retyped = servers.map((s) => (s.id === "srv_a" ? { ...s, tools: [{ name: "transfer", properties: { amount: { type: "string" } } }] } : s));
    const snap = snapshotOf(retyped, [policy("pol_1", "ten_a", "srv_a", forbid)]);
    const expected = await freshCompile(snap);
    expect(expected.issues.length).toBeGreaterThan(0);
    const got = await freshCompile(snap, poisoned(store, ["valid"]));
    expect(got.issues.map((i) => i.message)).toEqual(expected.issues.map((i) => i.message));
  });

  it("a policy's strict validation does not depend on the other policies of its set (a stored pass is keyed by schema and its own confined text)", async () => {
    const set = [
      ...policies,
      policy("pol_5", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args.nope > 1 };`),
      policy("pol_6", "ten_b", "srv_a", `forbid (principal, action, resource) when { context.args has note && context.args.note > 1 };`),
      policy("pol_7", "ten_a", "srv_b", `permit (principal, action, resource) when { context.args has note };`),
    ];
    const together = await freshCompile(snapshotOf(servers, set));
    const alone = [];
    for (const p of set) alone.push(...(await freshCompile(snapshotOf(servers, [p]))).issues);
    const key = (i: { message: string; policy?: { id: string } }) => `${i.policy?.id}|${i.message}`;
    expect(together.issues.length).toBeGreaterThanOrEqual(3);
    expect(together.issues.map(key).sort()).toEqual(alone.map(key).sort());
  });

  it("a policy that fails validation is not remembered as valid", async () => {
    const store = new MapStore();
    const snap = snapshotOf(servers, [policy("pol_1", "ten_a", "srv_a", `forbid (principal, action, resource) when { context.args.nope > 1 };`)]);
    const first = await freshCompile(snap, store);
    expect(first.issues.length).toBeGreaterThan(0);
    const again = await freshCompile(snap, store);
    // Messages only: Cedar's "did you mean" help varies from one run to the next, with or without a store.
    expect(again.issues.map((i) => [i.message, i.policy])).toEqual(first.issues.map((i) => [i.message, i.policy]));
  });
});

describe("stored conversions in the database", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(() => t.close());

  it("keeps exactly the set the last compile used, and a compile from it is the same bundle", async () => {
    const fleetId = uniq("flt_");
    await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
    const snap = snapshotOf(servers, policies);
    const s1 = await loadConversions(t.db, fleetId);
    const without = await freshCompile(snap);
    expect(JSON.stringify(await freshCompile(snap, s1))).toBe(JSON.stringify(without));
    await saveConversions(t.db, fleetId, s1);
    const rows = await t.db.select().from(compileConversions).where(eq(compileConversions.fleetId, fleetId));
    expect(rows.length).toBe(s1.used.size);
    const s2 = await loadConversions(t.db, fleetId);
    expect(s2.held).toBe(rows.length);
    expect(JSON.stringify(await freshCompile(snap, s2))).toBe(JSON.stringify(without));
    expect(s2.added.size).toBe(0);
    // A smaller policy set: what it no longer uses is dropped.
    const s3 = await loadConversions(t.db, fleetId);
    await freshCompile(snapshotOf(servers, [policies[0]!]), s3);
    await saveConversions(t.db, fleetId, s3);
    const left = await t.db.select().from(compileConversions).where(eq(compileConversions.fleetId, fleetId));
    expect(new Set(left.map((r) => r.key))).toEqual(s3.used);
    expect(left.length).toBeLessThan(rows.length);
  });
});

describe("conversions stored when a policy is saved (lib/policy/service.ts)", () => {
  let t: TestDb;
  let owner: MadeUser;
  let tenantA: string;
  let tenantB: string;
  let fleetId: string;
  let srv1: string;
  let srv2: string;
  let outside: string;

  const rows = async (fleet = fleetId) => t.db.select().from(compileConversions).where(eq(compileConversions.fleetId, fleet));
  const fleetSnapshot = () => loadSnapshot(t.db, [srv1, srv2]);

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantA = (await makeTenant(t.db, owner.actor)).id;
    tenantB = (await makeTenant(t.db, owner.actor)).id;
    const server = async (props: Record<string, unknown>) => {
      const s = await createServer(
        owner.ctx,
        createServerInput.parse({
          tenantId: tenantA,
          tenantIds: [tenantB],
          name: uniq("srv "),
          resourceUri: `https://mcp.test.example/${uniq()}`,
          upstreamUrl: "http://127.0.0.1:9/mcp",
          scopes: ["bank"],
        }),
      );
      await addTool(owner.ctx, s!.id, { name: "transfer", description: "", inputSchema: { type: "object", properties: props }, annotations: {}, risk: "high" });
      await putScopeMapping(owner.ctx, s!.id, { baseVersion: 0, mapping: { bank: ["transfer"] } });
      return s!.id;
    };
    srv1 = await server({ amount: { type: "integer" }, note: { type: "string" } });
    srv2 = await server({ amount: { type: "integer" } });
    outside = await server({ amount: { type: "integer" } });
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
    await t.db.insert(fleetServers).values([
      { fleetId, serverId: srv1 },
      { fleetId, serverId: srv2 },
    ]);
  });
  afterAll(() => t.close());

  const save = (tenantId: string, serverId: string, cedar: string, enabled = true) =>
    createPolicy(owner.ctx, { tenantId, serverId, name: uniq("policy "), description: "", kind: "cedar", cedar, enabled });

  it("the first compile of the fleet finds every conversion stored by the saves, and its bundle is the same byte for byte", async () => {
    const p1 = await save(tenantA, srv1, forbid);
    await save(tenantB, srv1, permit.replace("srv_a", srv1));
    await save(tenantA, srv2, `${forbid}\n${permit.replace("srv_a", srv2)}`);
    // A rule policy (its Cedar compiled from the rule), a disabled one, an edit, and a policy on a server of no fleet.
    await createPolicy(owner.ctx, {
      tenantId: tenantB,
      serverId: srv2,
      name: uniq("rule "),
      description: "",
      kind: "rule",
      rule: { effect: "forbid", actions: ["call_tool"], tools: ["transfer"], principals: { users: [], groups: ["finance"] }, clients: [], conditions: [{ arg: "amount", op: "gt", value: 500 }] },
      enabled: true,
    });
    await save(tenantB, srv2, forbid.replace("> 10", "> 99"), false);
    await updatePolicy(owner.ctx, p1.id, { cedar: forbid.replace("> 10", "> 15") });
    await save(tenantA, outside, forbid);
    expect((await rows()).length).toBeGreaterThan(0);
    // Keys of the disabled policy's text are not stored: it is not compiled.
    const snap = await fleetSnapshot();
    expect(snap.policies.length).toBe(5);
    const without = await freshCompile(snap);
    expect(without.issues).toEqual([]);
    expect(without.content.cedar.policies[p1.id]).toContain("> 15");
    const store = await loadConversions(t.db, fleetId);
    const got = await freshCompile(snap, store);
    expect(JSON.stringify(got)).toBe(JSON.stringify(without));
    // Nothing converted afresh: every json, confined text and validation the compile needed was stored.
    expect([...store.added.keys()]).toEqual([]);
    // The first version of the edited policy is held but not used: the compile's save drops it.
    expect(store.unused().length).toBeGreaterThan(0);
    await saveConversions(t.db, fleetId, store);
    expect(new Set((await rows()).map((r) => r.key))).toEqual(store.used);
  });

  it("a stored row edited in the database is never used for another tenant, server, text or schema", async () => {
    await save(tenantA, srv1, forbid.replace("> 10", "> 42"));
    const snap = await fleetSnapshot();
    const mine = snap.policies.find((p) => p.cedar.includes("> 42"))!;
    const stored = new MapStore();
    for (const r of await rows()) stored.map.set(r.key, r.value);
    // The fleet's rows replaced by wrong values of their kinds (as an edit in the database would).
    const poison = async (kinds: ("json" | "confined" | "valid")[]) => {
      await t.db.delete(compileConversions).where(eq(compileConversions.fleetId, fleetId));
      await t.db.insert(compileConversions).values([...poisoned(stored, kinds).map].map(([key, value]) => ({ fleetId, key, value })));
    };
    const check = async (s: RegistrySnapshot) => {
      const expected = await freshCompile(s);
      const got = await freshCompile(s, await loadConversions(t.db, fleetId));
      expect(JSON.stringify(got)).toBe(JSON.stringify(expected));
      return got;
    };
    const only = (p: RegistrySnapshot["policies"][number], servers = snap.servers) => ({ ...snap, servers: servers.map((x) => ({ ...x, mapping: {} })), policies: [p] });
    try {
      // The same text for the other tenant, and on the other server (its JSON is the same input; its confined text and validation are not).
      await poison(["confined", "valid"]);
      expect((await check(only({ ...mine, tenantId: tenantB }))).content.cedar.policies[mine.id]).toContain(`Tenant::"${tenantB}"`);
      expect((await check(only({ ...mine, serverId: srv2 }))).content.cedar.policies[mine.id]).toContain(`Server::"${srv2}"`);
      // The same policy under another schema: amount a string on srv1, so the stored "valid" of this text must not pass it.
      const retyped = snap.servers.map((x) =>
        x.id === srv1 ? { ...x, tools: x.tools.map((tool) => ({ ...tool, approved: { ...tool.approved!, inputSchema: { type: "object", properties: { amount: { type: "string" } } } } })) } : x,
      );
      await poison(["valid"]);
      expect((await check(only(mine, retyped))).issues.length).toBeGreaterThan(0);
      // An edited text: nothing stored for the old one is used.
      await poison(["json", "confined", "valid"]);
      expect((await check(only({ ...mine, cedar: mine.cedar.replace("> 42", "> 43") }))).content.cedar.policies[mine.id]).toContain("> 43");
    } finally {
      await t.db.delete(compileConversions).where(eq(compileConversions.fleetId, fleetId));
    }
  });

  it("a compile's save keeps rows a policy saved after the compile read the set", async () => {
    const snap = await fleetSnapshot();
    const store = await loadConversions(t.db, fleetId);
    await freshCompile(snap, store);
    const before = new Set((await rows()).map((r) => r.key));
    const p = await save(tenantB, srv1, forbid.replace("> 10", "> 77"));
    const mineOnly = (await rows()).map((r) => r.key).filter((k) => !before.has(k));
    expect(mineOnly.length).toBeGreaterThan(0);
    await saveConversions(t.db, fleetId, store);
    const left = new Set((await rows()).map((r) => r.key));
    for (const k of mineOnly) expect(left.has(k)).toBe(true);
    // And the next compile finds them.
    const next = await loadConversions(t.db, fleetId);
    await freshCompile(await fleetSnapshot(), next);
    expect([...next.added.keys()]).toEqual([]);
    expect(p.id).toMatch(/^pol_/);
  });

  it("stores nothing with MANDATE_COMPILE_STORE=0", async () => {
    await t.db.delete(compileConversions).where(eq(compileConversions.fleetId, fleetId));
    vi.stubEnv("MANDATE_COMPILE_STORE", "0");
    try {
      await save(tenantA, srv2, forbid.replace("> 10", "> 5"));
    } finally {
      vi.unstubAllEnvs();
    }
    expect(await rows()).toEqual([]);
  });
});
