import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import type { JWK } from "jose";
import { fleetServers, fleets, signingKeys } from "@/db/schema";
import { addTool } from "@/lib/catalog/service";
import { diffRevisions, draftBundle, getBundle, listBundles, publishBundle, rollbackBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, seal, signPayload, unseal, type Kek } from "@/lib/bundles/signing";
import { BundleRejected, contentHash, verifyBundle, type SignedBundle } from "@/lib/enforcement/bundle";
import { PolicyEngine } from "@/lib/enforcement/engine";
import { newId } from "@/lib/ids";
import { createPolicy, createTest, runServerTests, simulateDraft, updatePolicy, checkPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe("sealing with the key-encryption key", () => {
  it("round-trips and refuses any tampering", () => {
    const sealed = seal(kek, Buffer.from("private key bytes"), "signing-key:k1");
    expect(unseal(kek, sealed, "signing-key:k1").toString()).toBe("private key bytes");
    const [v, iv, tag, ct] = sealed.split(".");
    const flip = (s: string) => {
      const b = Buffer.from(s, "base64url");
      b[0] = b[0]! ^ 1;
      return b.toString("base64url");
    };
    expect(() => unseal(kek, [v, iv, tag, flip(ct!)].join("."), "signing-key:k1")).toThrow();
    expect(() => unseal(kek, [v, iv, flip(tag!), ct].join("."), "signing-key:k1")).toThrow();
    expect(() => unseal(kek, [v, flip(iv!), tag, ct].join("."), "signing-key:k1")).toThrow();
    expect(() => unseal(kek, sealed, "signing-key:k2")).toThrow();
    expect(() => unseal({ id: "other", key: randomBytes(32) }, sealed, "signing-key:k1")).toThrow();
  });
});

describe("policies, tests and bundles on a real database", () => {
  let t: TestDb;
  let owner: MadeUser;
  let admin: MadeUser;
  let auditor: MadeUser;
  let tenantId: string;
  let serverId: string;
  let fleetId: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    const tenant = await makeTenant(t.db, owner.actor);
    tenantId = tenant.id;
    admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    auditor = await makeUser(t.db, { memberships: [[tenantId, "auditor"]] });
    const server = await createServer(
      admin.ctx,
      createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.test.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["tickets:read", "tickets:write"] }),
    );
    serverId = server!.id;
    await addTool(admin.ctx, serverId, {
      name: "list_tickets",
      description: "list",
      inputSchema: { type: "object", properties: { status: { type: "string" } } },
      annotations: { readOnlyHint: true },
      risk: "low",
    });
    await addTool(admin.ctx, serverId, { name: "refund", description: "refund", inputSchema: { type: "object", properties: { amount: { type: "integer" } } }, annotations: {}, risk: "high" });
    await putScopeMapping(admin.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets"], "tickets:write": ["refund"] } });
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
    await t.db.insert(fleetServers).values({ fleetId, serverId });
  });
  afterAll(() => t.close());

  it("refuses invalid Cedar with the line, unknown attributes, and unknown tools", async () => {
    const bad = await expectAppError(
      createPolicy(admin.ctx, { tenantId, serverId, name: "broken", description: "", kind: "cedar", cedar: "permit (principal, action, resource)\nwhen { context.args.amount > };", enabled: true }),
      "validation_failed",
    );
    expect(bad.issues?.[0]?.message).toMatch(/^line 2, column \d+/);
    const attr = await expectAppError(
      createPolicy(admin.ctx, {
        tenantId,
        serverId,
        name: "typo",
        description: "",
        kind: "cedar",
        cedar: "permit (principal, action, resource) when { context.args has amont && context.args.amont > 1 };",
        enabled: true,
      }),
      "validation_failed",
    );
    expect(attr.issues?.map((i) => i.message).join("\n")).toMatch(/amont/);
    const tool = await expectAppError(
      createPolicy(admin.ctx, {
        tenantId,
        serverId,
        name: "ghost",
        description: "",
        kind: "rule",
        rule: { effect: "permit", actions: ["call_tool"], tools: ["no_such_tool"], principals: { users: [], groups: [] }, clients: [], conditions: [] },
        enabled: true,
      }),
      "validation_failed",
    );
    expect(tool.issues?.[0]?.message).toMatch(/no_such_tool.*not in the catalogue/);
    const live = await checkPolicy(admin.ctx, { tenantId, serverId, cedar: "permit (principal, action, resource) when { context.nope };" });
    expect(live.issues.length).toBeGreaterThan(0);
    await expectAppError(
      createPolicy(auditor.ctx, { tenantId, serverId, name: "auditor", description: "", kind: "cedar", cedar: "permit (principal, action, resource);", enabled: true }),
      "forbidden",
    );
  });

  it("holds back a tenant whose test fails (its own server unserved before a first publish), publishes when fixed, diffs and rolls back", async () => {
    const limit = await createPolicy(admin.ctx, {
      tenantId,
      serverId,
      name: "refund limit",
      description: "",
      kind: "rule",
      rule: { effect: "forbid", actions: ["call_tool"], tools: ["refund"], principals: { users: [], groups: [] }, clients: [], conditions: [{ arg: "amount", op: "gt", value: 1000 }] },
      enabled: true,
    });
    expect(limit!.cedar).toContain('context.args["amount"] > 1000');
    await createTest(admin.ctx, {
      tenantId,
      serverId,
      name: "big refunds are denied",
      expected: "deny",
      request: { user: "alice", groups: [], client: "c", scopes: ["tickets:write"], tool: "refund", action: "call_tool", args: { amount: 500 } },
    });
    const run = await runServerTests(admin.ctx, serverId);
    expect(run.failed).toBe(1);

    // The failing test holds back its tenant's part (issue 17, item 6): nothing of it would be published; with
    // no live revision its own server would not be served at all. It blocks nothing else.
    const held = await draftBundle(owner.ctx, fleetId);
    expect(held.blockers).toEqual([]);
    expect(held.heldBack.map((h) => h.tenantId)).toEqual([tenantId]);
    expect(held.heldBack[0]!.problems.join("\n")).toMatch(/big refunds are denied.*expected deny, got allow/);
    expect(held.content.servers.find((s) => s.id === serverId)).toBeUndefined();
    expect(held.content.catalogue).toEqual([]);
    expect((await listBundles(owner.ctx, fleetId)).items).toHaveLength(0);
    await expectAppError(publishBundle(admin.ctx, fleetId, { note: "" }, kek), "forbidden");

    await updatePolicy(admin.ctx, limit!.id, {
      rule: { effect: "forbid", actions: ["call_tool"], tools: ["refund"], principals: { users: [], groups: [] }, clients: [], conditions: [{ arg: "amount", op: "gt", value: 100 }] },
    });
    const draft = await draftBundle(owner.ctx, fleetId);
    expect(draft.blockers).toEqual([]);
    expect(draft.heldBack).toEqual([]);
    const r1 = await publishBundle(owner.ctx, fleetId, { note: "first" }, kek);
    expect(r1.revision).toBe(1);

    // The published bundle verifies with the public keys agents pin, and decides as tested.
    const b1 = await getBundle(owner.ctx, fleetId, 1);
    const keys = await publicKeys(t.db);
    const content = await verifyBundle(b1, { keys, fleetId });
    const engine = new PolicyEngine(content);
    expect(engine.decide({ action: "call_tool", serverId, tool: "refund", tenantId, user: "alice", client: "c", scopes: ["tickets:write"], args: { amount: 500 } }).decision).toBe("deny");
    expect(engine.decide({ action: "call_tool", serverId, tool: "refund", tenantId, user: "alice", client: "c", scopes: ["tickets:write"], args: { amount: 50 } }).decision).toBe("allow");

    await updatePolicy(admin.ctx, limit!.id, { enabled: false });
    await createTest(admin.ctx, {
      tenantId,
      serverId,
      name: "small refunds pass",
      expected: "allow",
      request: { user: "alice", groups: [], client: "c", scopes: ["tickets:write"], tool: "refund", action: "call_tool", args: { amount: 5 } },
    });
    await updatePolicy(admin.ctx, limit!.id, { enabled: true });
    await createPolicy(admin.ctx, {
      tenantId,
      serverId,
      name: "readers",
      description: "",
      kind: "cedar",
      cedar: 'permit (principal in Group::"readers", action, resource == Tool::"' + serverId + '/list_tickets");',
      enabled: true,
    });
    const r2 = await publishBundle(owner.ctx, fleetId, { note: "second" }, kek);
    expect(r2.revision).toBe(2);
    const d = await diffRevisions(owner.ctx, fleetId, 1, 2);
    expect(d.diff.policies.added.map((p) => p.name)).toEqual(["readers"]);

    const r3 = await rollbackBundle(owner.ctx, fleetId, 1, kek);
    expect(r3).toMatchObject({ revision: 3, rolledBackFrom: 1, parentRevision: 2 });
    const b3 = await getBundle(owner.ctx, fleetId, 3);
    expect(b3.content.cedar.policies).toEqual(b1.content.cedar.policies);
    await verifyBundle(b3, { keys, fleetId, minRevision: 2 });
    await expectAppError(rollbackBundle(owner.ctx, fleetId, 3, kek), "conflict");
    expect((await listBundles(owner.ctx, fleetId)).activeRevision).toBe(3);

    const sim = await simulateDraft(admin.ctx, { tenantId, serverId, request: { user: "bob", groups: ["readers"], client: "c", scopes: [], tool: "list_tickets", action: "call_tool", args: {} } });
    expect(sim.decision).toBe("allow");
    expect("determiningPolicies" in sim && sim.determiningPolicies[0]?.name).toBe("readers");
  });

  it("keeps the private signing key sealed and fails loudly on a wrong key-encryption key", async () => {
    const key = await activeSigningKey(t.db, kek);
    const rows = await t.db.select().from(signingKeys);
    const pkcs8 = key.privateKey.export({ format: "der", type: "pkcs8" }).toString("base64");
    expect(JSON.stringify(rows)).not.toContain(pkcs8);
    expect(JSON.stringify(rows)).not.toContain((key.privateKey.export({ format: "jwk" }) as JWK).d);
    await expect(activeSigningKey(t.db, { id: "kek-test", key: randomBytes(32) })).rejects.toThrow(/cannot unseal/);
    await expect(activeSigningKey(t.db, { id: "kek-other", key: kek.key })).rejects.toThrow(/sealed with key-encryption key kek-test/);
  });
});

describe("bundle verification refuses", () => {
  let good: SignedBundle;
  let keys: Record<string, JWK>;

  beforeAll(async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const kid = "k1";
    keys = { [kid]: { ...(publicKey.export({ format: "jwk" }) as JWK), kid } };
    const content = {
      manifest: { format: 1, fleetId: "flt_x", revision: 5, parentRevision: 4, createdAt: "2026-01-01T00:00:00Z", compilerVersion: "t" },
      servers: [],
      catalogue: [],
      cedar: { schema: {}, policies: { p: "permit (principal, action, resource);" }, entities: [] },
      policies: {},
      revocations: [],
      approvedClients: [],
      masking: [],
    } as unknown as SignedBundle["content"];
    const sha256 = contentHash(content);
    good = { revision: 5, sha256, keyId: kid, content, signature: await signPayload({ kid, privateKey, publicJwk: keys[kid]! }, { sha256, fleetId: "flt_x", revision: 5 }) };
  });

  const reason = async (p: Promise<unknown>) => {
    try {
      await p;
      return "accepted";
    } catch (e) {
      return e instanceof BundleRejected ? e.reason : `other: ${String(e)}`;
    }
  };

  it("accepts the genuine bundle", async () => {
    expect(await reason(verifyBundle(good, { keys, fleetId: "flt_x", minRevision: 5 }))).toBe("accepted");
  });
  it("a bundle with one byte changed", async () => {
    const tampered = JSON.parse(JSON.stringify(good)) as SignedBundle;
    tampered.content.cedar.policies.p = "permit (principal, action, resourcE);";
    expect(await reason(verifyBundle(tampered, { keys }))).toBe("hash_mismatch");
    // Even with the hash recomputed, the signature names the original hash.
    tampered.sha256 = contentHash(tampered.content);
    expect(await reason(verifyBundle(tampered, { keys }))).toBe("hash_mismatch");
  });
  it("a wrong key", async () => {
    const other = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }) as JWK;
    expect(await reason(verifyBundle(good, { keys: { k1: { ...other, kid: "k1" } } }))).toBe("bad_signature");
    expect(await reason(verifyBundle(good, { keys: {} }))).toBe("unknown_key");
  });
  it("a missing or garbled signature", async () => {
    expect(await reason(verifyBundle({ ...good, signature: "" }, { keys }))).toBe("missing_signature");
    expect(await reason(verifyBundle({ ...good, signature: good.signature.slice(0, -4) + "AAAA" }, { keys }))).toBe("bad_signature");
  });
  it("an older revision, or another fleet's bundle", async () => {
    expect(await reason(verifyBundle(good, { keys, minRevision: 6 }))).toBe("stale_revision");
    expect(await reason(verifyBundle(good, { keys, fleetId: "flt_other" }))).toBe("wrong_fleet");
    expect(await reason(verifyBundle({ ...good, revision: 6 }, { keys }))).toBe("hash_mismatch");
  });
});
