import { createHash, randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents, fleetServers, fleets, signingKeys, vaultVersions } from "@/db/schema";
import { activeSigningKey, type Kek } from "@/lib/bundles/signing";
import { parsePreviousKeks } from "@/lib/env";
import { newId } from "@/lib/ids";
import { fingerprint, lastChars, openSecret, sealSecret } from "@/lib/vault/crypto";
import { checkKeyring, rewrapAll } from "@/lib/vault/keyring";
import { createEntry, resolveCredential } from "@/lib/vault/service";
import { vaultStartup } from "@/lib/vault/startup";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

const kek1: Kek = { id: "kek-1", key: randomBytes(32) };
const kek2: Kek = { id: "kek-2", key: randomBytes(32) };

/** Flips one character inside the base64url part `index` of a `v1.<iv>.<tag>.<ct>` sealed value. */
function tamper(sealed: string, index: 1 | 2 | 3): string {
  const parts = sealed.split(".");
  const p = parts[index]!;
  parts[index] = (p[0] === "A" ? "B" : "A") + p.slice(1);
  return parts.join(".");
}

describe("vault envelope encryption", () => {
  const entryId = newId("vaultEntry");
  const secret = "sk_live_0123456789abcdefWXYZ";

  it("round-trips every kind of secret and never stores it in clear", () => {
    for (const payload of [secret, { username: "svc", password: "p@ss-word-0123456789" }, { clientSecret: "client-secret-0123456789" }]) {
      const s = sealSecret(kek1, entryId, 3, payload);
      expect(s.kekId).toBe("kek-1");
      expect(JSON.stringify(s)).not.toContain(typeof payload === "string" ? payload : Object.values(payload).at(-1));
      expect(openSecret([kek1], entryId, 3, s)).toEqual(payload);
    }
  });

  it("uses a fresh data key per version: the same secret seals differently", () => {
    const a = sealSecret(kek1, entryId, 1, secret);
    const b = sealSecret(kek1, entryId, 1, secret);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.wrappedKey).not.toBe(b.wrappedKey);
    expect(a.fingerprint).toBe(b.fingerprint);
  });

  it("fingerprints with 12 hex characters and shows the last 4 only for long secrets", () => {
    expect(fingerprint(kek1, secret)).toMatch(/^[0-9a-f]{12}$/);
    expect(fingerprint(kek1, secret)).not.toBe(fingerprint(kek1, `${secret}x`));
    expect(lastChars(secret)).toBe("WXYZ");
    expect(lastChars("short-secret")).toBe("");
    expect(lastChars({ username: "u", password: "0123456789abcdefPASS" })).toBe("PASS");
  });

  it("the fingerprint is keyed: nobody without the KEK can test a guessed basic-auth password against it", () => {
    const basic = { username: "svc", password: "summer2024" };
    const shown = sealSecret(kek1, entryId, 1, basic).fingerprint;
    // What a reader could compute offline from a guess with the old, unkeyed scheme (SHA-256 over "mandate-fp:" + user:password).
    const unkeyed = createHash("sha256").update("mandate-fp:svc:summer2024").digest("hex").slice(0, 12);
    expect(shown).not.toBe(unkeyed);
    expect(shown).toBe(fingerprint(kek1, basic));
    expect(fingerprint(kek2, basic)).not.toBe(shown); // another key, another fingerprint: it depends on the key
  });

  it("refuses a truncated GCM tag (the tag length is pinned to 16 bytes)", () => {
    const s = sealSecret(kek1, entryId, 4, secret);
    const [v, iv, tag, ct] = s.ciphertext.split(".");
    // GCM verifies a prefix of the real tag unless the length is pinned: 4 bytes would leave 2^32 forgery work.
    const short = [v, iv, Buffer.from(tag!, "base64url").subarray(0, 4).toString("base64url"), ct].join(".");
    expect(() => openSecret([kek1], entryId, 4, { ...s, ciphertext: short })).toThrow();
    const [wv, wiv, wtag, wct] = s.wrappedKey.split(".");
    const shortWrap = [wv, wiv, Buffer.from(wtag!, "base64url").subarray(0, 12).toString("base64url"), wct].join(".");
    expect(() => openSecret([kek1], entryId, 4, { ...s, wrappedKey: shortWrap })).toThrow();
  });

  it("fails on any tampering, never returning wrong data", () => {
    const s = sealSecret(kek1, entryId, 2, secret);
    const cases: [string, () => unknown][] = [
      ["ciphertext body", () => openSecret([kek1], entryId, 2, { ...s, ciphertext: tamper(s.ciphertext, 3) })],
      ["ciphertext tag", () => openSecret([kek1], entryId, 2, { ...s, ciphertext: tamper(s.ciphertext, 2) })],
      ["ciphertext iv", () => openSecret([kek1], entryId, 2, { ...s, ciphertext: tamper(s.ciphertext, 1) })],
      ["wrapped key", () => openSecret([kek1], entryId, 2, { ...s, wrappedKey: tamper(s.wrappedKey, 3) })],
      ["AAD: other version", () => openSecret([kek1], entryId, 3, s)],
      ["AAD: other entry", () => openSecret([kek1], newId("vaultEntry"), 2, s)],
      ["wrong KEK under the same id", () => openSecret([{ id: "kek-1", key: randomBytes(32) }], entryId, 2, s)],
      ["KEK not configured", () => openSecret([kek2], entryId, 2, s)],
    ];
    for (const [what, fn] of cases) expect(fn, what).toThrow();
    // A ciphertext moved under another version's (valid) wrapped key fails too.
    const other = sealSecret(kek1, entryId, 2, "another-secret-value-123456");
    expect(() => openSecret([kek1], entryId, 2, { ...s, wrappedKey: other.wrappedKey })).toThrow();
    expect(() => openSecret([kek2], entryId, 2, s)).toThrow(/kek-1/);
  });

  it("parses MANDATE_KEK_PREVIOUS and lists every problem", () => {
    const good = randomBytes(32).toString("base64");
    expect(parsePreviousKeks(`old-1:${good}`, "kek-2")).toEqual({ keys: [{ id: "old-1", key: Buffer.from(good, "base64") }], problems: [] });
    const { problems } = parsePreviousKeks(`kek-2:${good},bad id:${good},short:${randomBytes(8).toString("base64")},nocolon,a:${good},a:${good}`, "kek-2");
    expect(problems).toHaveLength(5);
    expect(problems.join("\n")).toMatch(/active MANDATE_KEK_ID/);
    expect(problems.join("\n")).toMatch(/exactly 32 bytes \(got 8\)/);
    expect(problems.join("\n")).toMatch(/appears twice/);
    expect(problems.join("\n")).toMatch(/expected id:base64/);
  });
});

describe("KEK rotation", () => {
  let t: TestDb;
  let owner: MadeUser;
  let tenantId: string;
  let serverIds: string[];
  const secrets = ["kek-rotation-secret-A-0001", "kek-rotation-secret-B-0002", "kek-rotation-secret-C-0003"];
  let agent: { id: string; name: string; fleetId: string };

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantId = (await makeTenant(t.db, owner.actor)).id;
    serverIds = [];
    for (const s of secrets) {
      const server = (await makeServer(owner.ctx, tenantId))!;
      serverIds.push(server.id);
      await createEntry(owner.ctx, { serverId: server.id, tenantId, name: "key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: s }, kek1);
    }
    // The signing key, sealed with kek-1 too.
    await activeSigningKey(t.db, kek1);
    const fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: "rotation fleet" });
    await t.db.insert(fleetServers).values(serverIds.map((serverId) => ({ fleetId, serverId })));
    agent = { id: newId("agent"), name: "agent-rot", fleetId };
    await t.db.insert(agents).values({ ...agent, keyHash: "x" });
  });
  afterAll(() => t.close());

  const resolveAll = (keyring: readonly Kek[]) => Promise.all(serverIds.map((serverId) => resolveCredential(t.db, agent, { serverId, tenantId }, keyring).then((r) => r.secret)));

  it("fails loudly at start when a KEK in use is missing or wrong, naming it", async () => {
    await expect(checkKeyring(t.db, [kek2])).rejects.toThrow(/key-encryption key "kek-1" seals 3 vault data key\(s\) and 1 signing key\(s\) but is not configured/);
    await expect(vaultStartup(t.db, kek2, [kek2], { maintenance: false })).rejects.toThrow(/"kek-1"/);
    await expect(checkKeyring(t.db, [kek2, { id: "kek-1", key: randomBytes(32) }])).rejects.toThrow(/"kek-1" is configured but does not open/);
    await expect(checkKeyring(t.db, [kek1])).resolves.toEqual({ kekIds: ["kek-1"] });
  });

  it("with kek-2 active and kek-1 previous: reads work, rewrap moves everything to kek-2 while reads continue, then kek-2 alone opens all", async () => {
    const ring = [kek2, kek1];
    // Before the rewrap: everything opens through the keyring, the signing key too.
    expect(await resolveAll(ring)).toEqual(secrets);
    expect((await activeSigningKey(t.db, { ...kek2, previous: [kek1] })).kid).toMatch(/^mk_/);

    // Rewrap one row per batch while resolving in parallel: no read fails.
    const reads: Promise<unknown>[] = [];
    let rewrapping = true;
    const reader = (async () => {
      while (rewrapping) {
        reads.push(resolveAll(ring));
        await reads.at(-1);
      }
    })();
    const counts = await rewrapAll(t.db, ring, 1);
    rewrapping = false;
    await reader;
    await Promise.all(reads);
    expect(reads.length).toBeGreaterThan(0);
    expect(counts).toEqual({ vaultVersions: 3, signingKeys: 1 });

    const versions = await t.db.select().from(vaultVersions);
    expect(versions.every((v) => v.kekId === "kek-2")).toBe(true);
    expect((await t.db.select().from(signingKeys)).every((k) => k.kekId === "kek-2")).toBe(true);
    expect(await resolveAll([kek2])).toEqual(secrets);
    expect((await activeSigningKey(t.db, kek2)).kid).toMatch(/^mk_/);
    await expect(checkKeyring(t.db, [kek2])).resolves.toEqual({ kekIds: ["kek-2"] });
    // Nothing left to do; the old key opens nothing any more.
    expect(await rewrapAll(t.db, ring)).toEqual({ vaultVersions: 0, signingKeys: 0 });
    await expect(resolveAll([kek1])).rejects.toThrow(/kek-2/);
  });

  it("startup rewraps by itself when a previous key is configured", async () => {
    const kek3: Kek = { id: "kek-3", key: randomBytes(32) };
    const out = await vaultStartup(t.db, { ...kek3, previous: [kek2] }, [kek3, kek2], { maintenance: false });
    expect(out.rewrapped).toEqual({ vaultVersions: 3, signingKeys: 1 });
    const [v] = await t.db.select().from(vaultVersions).where(eq(vaultVersions.kekId, "kek-3"));
    expect(v).toBeDefined();
    expect(await resolveAll([kek3])).toEqual(secrets);
  });
});
