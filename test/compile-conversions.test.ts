import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { compileConversions, fleets } from "@/db/schema";
import type { ConversionStore, RegistrySnapshot } from "@/lib/bundles/compile";
import { loadConversions, saveConversions } from "@/lib/bundles/conversions";
import { policy, snapshotOf, type ServerSpec } from "./decide-fixtures";
import { createTestDb, uniq, type TestDb } from "./db";
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
