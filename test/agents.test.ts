import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { ZodError } from "zod";
import { agents, auditEvents, enrollmentTokens } from "@/db/schema";
import { parseAgentKey, parseEnrollmentToken } from "@/lib/agents/keys";
import { authenticateAgent, enrollAgent, heartbeatInput, recordHeartbeat } from "@/lib/agents/service";
import { createEnrollmentToken, createFleet, revokeAgent, revokeEnrollmentToken, rotateAgentKey } from "@/lib/fleets/service";
import { createTestDb, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let owner: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  await t?.close();
});

async function fleetWithToken(ttlMinutes?: number) {
  const fleet = (await createFleet(owner.ctx, { name: uniq("Agents ") }))!;
  const tok = await createEnrollmentToken(owner.ctx, fleet.id, ttlMinutes ? { ttlMinutes } : {});
  return { fleet, tok };
}

async function enrolled() {
  const { fleet, tok } = await fleetWithToken();
  return { fleet, ...(await enrollAgent(t.db, { token: tok.token, name: uniq("agent-"), version: "1.2.3" })) };
}

describe("enrollment", () => {
  it("a token enrolls exactly one agent; the second use is refused as already used", async () => {
    const { fleet, tok } = await fleetWithToken();
    const out = await enrollAgent(t.db, { token: tok.token, name: "edge-1", version: "1.0.0" });
    expect(out.fleetId).toBe(fleet.id);
    expect(out.agentId).toMatch(/^agt_[0-9a-f]{32}$/);
    expect(out.agentKey).toMatch(/^mda_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    expect(parseAgentKey(out.agentKey)!.id).toBe(out.agentId);

    const [tokRow] = await t.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, tok.id));
    expect(tokRow).toMatchObject({ usedByAgentId: out.agentId });
    expect(tokRow!.usedAt).not.toBeNull();
    const [agentRow] = await t.db.select().from(agents).where(eq(agents.id, out.agentId));
    expect(agentRow).toMatchObject({ fleetId: fleet.id, name: "edge-1", version: "1.0.0", revokedAt: null });

    const again = await expectAppError(enrollAgent(t.db, { token: tok.token, name: "edge-2", version: "1.0.0" }), "unauthenticated");
    expect(again.message).toMatch(/already used/);
    expect(await t.db.select().from(agents).where(eq(agents.fleetId, fleet.id))).toHaveLength(1);
    const events = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, out.agentId));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ action: "agent.enroll", actorType: "system", tenantId: null, after: { fleetId: fleet.id, name: "edge-1", enrollmentTokenId: tok.id } });
  });

  it("concurrent enrollments with one token: exactly one wins (the token row is locked)", async () => {
    const { fleet, tok } = await fleetWithToken();
    const results = await Promise.allSettled([0, 1, 2, 3].map((i) => enrollAgent(t.db, { token: tok.token, name: `race-${i}`, version: "1" })));
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost.map((r) => (r.reason as Error).message)).toEqual(lost.map(() => "Enrollment token already used"));
    expect(await t.db.select().from(agents).where(eq(agents.fleetId, fleet.id))).toHaveLength(1);
  });

  it("an expired token is refused as expired", async () => {
    const { tok } = await fleetWithToken(1);
    const expiry = new Date(tok.expiresAt);
    const err = await expectAppError(enrollAgent(t.db, { token: tok.token, name: "late", version: "1" }, expiry), "unauthenticated");
    expect(err.message).toMatch(/expired/);
    // Really expired in the database's own time too: move the expiry into the past.
    await t.db
      .update(enrollmentTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(enrollmentTokens.id, tok.id));
    expect((await expectAppError(enrollAgent(t.db, { token: tok.token, name: "late", version: "1" }), "unauthenticated")).message).toMatch(/expired/);
    const [row] = await t.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, tok.id));
    expect(row!.usedAt).toBeNull();
  });

  it("a revoked, unknown, tampered or malformed token is refused", async () => {
    const { fleet, tok } = await fleetWithToken();
    const revoked = await createEnrollmentToken(owner.ctx, fleet.id);
    await revokeEnrollmentToken(owner.ctx, fleet.id, revoked.id);
    const [prefix, secret] = tok.token.split(".") as [string, string];
    const flipped = `${prefix}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    for (const bad of [revoked.token, flipped, `mde_${"0".repeat(32)}.${secret}`, tok.token.replace("mde_", "mda_"), `${tok.token} `, "", "mde_"]) {
      const err = await expectAppError(enrollAgent(t.db, { token: bad, name: "x", version: "1" }), "unauthenticated");
      expect(err.message, bad).toBe("Enrollment token is invalid or revoked");
    }
    // The good token still works afterwards.
    expect((await enrollAgent(t.db, { token: tok.token, name: "ok", version: "1" })).fleetId).toBe(fleet.id);
  });

  it("validates the enrollment body", async () => {
    const { tok } = await fleetWithToken();
    await expect(enrollAgent(t.db, { token: tok.token, name: "", version: "1" })).rejects.toBeInstanceOf(ZodError);
    await expect(enrollAgent(t.db, { token: tok.token, name: "x".repeat(121), version: "1" })).rejects.toBeInstanceOf(ZodError);
    await expect(enrollAgent(t.db, { token: tok.token, name: "x", version: "v".repeat(65) })).rejects.toBeInstanceOf(ZodError);
    // Validation failures do not burn the token.
    expect((await enrollAgent(t.db, { token: tok.token, name: "x", version: "1" })).agentId).toBeTruthy();
  });
});

describe("agent keys", () => {
  it("the key authenticates its agent; tampered, unknown and malformed keys do not", async () => {
    const { agentId, agentKey } = await enrolled();
    expect((await authenticateAgent(t.db, agentKey))?.id).toBe(agentId);
    const [prefix, secret] = agentKey.split(".") as [string, string];
    for (const bad of [
      `${prefix}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`,
      `mda_${"0".repeat(32)}.${secret}`,
      agentKey.replace("mda_", "mdt_"),
      agentKey.toUpperCase(),
      `${agentKey}x`,
      "",
      "mda_",
    ]) {
      expect(await authenticateAgent(t.db, bad), bad).toBeNull();
    }
  });

  it("rotation: old key fails, new key works; revocation: refused", async () => {
    const { agentId, agentKey } = await enrolled();
    const { agentKey: newKey } = await rotateAgentKey(owner.ctx, agentId);
    expect(await authenticateAgent(t.db, agentKey)).toBeNull();
    expect((await authenticateAgent(t.db, newKey))?.id).toBe(agentId);
    await revokeAgent(owner.ctx, agentId);
    expect(await authenticateAgent(t.db, newKey)).toBeNull();
  });

  it("the database holds no plaintext token or key: scan every row", async () => {
    const { fleet, tok } = await fleetWithToken();
    const out = await enrollAgent(t.db, { token: tok.token, name: "scan", version: "1" });
    const rotated = await rotateAgentKey(owner.ctx, out.agentId);
    const unused = await createEnrollmentToken(owner.ctx, fleet.id);
    const secrets = [tok.token, out.agentKey, rotated.agentKey, unused.token].map((v) => v.split(".")[1]!);

    // Every table, every row, as text.
    const tables = await t.db.execute<{ table_name: string }>(sql`select table_name from information_schema.tables where table_schema = 'public'`);
    const names = ((tables as unknown as { rows?: { table_name: string }[] }).rows ?? (tables as unknown as { table_name: string }[])).map((r) => r.table_name);
    expect(names).toEqual(expect.arrayContaining(["agents", "enrollment_tokens", "audit_events"]));
    let dump = "";
    for (const name of names) {
      const rows = await t.db.execute(sql.raw(`select t::text as row from "${name}" t`));
      const list = (rows as unknown as { rows?: { row: string }[] }).rows ?? (rows as unknown as { row: string }[]);
      dump += list.map((r) => r.row).join("\n");
    }
    expect(dump).toContain(out.agentId);
    for (const s of secrets) {
      expect(dump).not.toContain(s);
      expect(dump).not.toContain(s.slice(0, 16));
      expect(dump).not.toContain(Buffer.from(s).toString("base64"));
    }
    // What is stored is the SHA-256 of the secret.
    const [tokRow] = await t.db
      .select()
      .from(enrollmentTokens)
      .where(eq(enrollmentTokens.id, parseEnrollmentToken(unused.token)!.id));
    expect(tokRow!.secretHash).toBe(createHash("sha256").update(secrets[3]!).digest("hex"));
    const [agentRow] = await t.db.select().from(agents).where(eq(agents.id, out.agentId));
    expect(agentRow!.keyHash).toBe(createHash("sha256").update(secrets[2]!).digest("hex"));
  });
});

describe("heartbeat", () => {
  it("records version, revision, counters and errors", async () => {
    const { agentId, agentKey } = await enrolled();
    const agent = (await authenticateAgent(t.db, agentKey))!;
    const before = Date.now();
    await recordHeartbeat(t.db, agent, { version: "1.3.0", bundleRevision: 4, counters: { allowed: 10, denied: 2, "cache.hits": 0 }, errors: ["jwks fetch failed", "bundle stale"] });
    let [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row).toMatchObject({ version: "1.3.0", bundleRevision: 4, counters: { allowed: 10, denied: 2, "cache.hits": 0 }, lastError: "jwks fetch failed\nbundle stale" });
    expect(row!.lastSeenAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);

    // Omitted errors leave the last error; [] clears it. Counters are replaced (they are cumulative).
    await recordHeartbeat(t.db, agent, { version: "1.3.0", bundleRevision: 5, counters: { allowed: 11 } });
    [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row).toMatchObject({ bundleRevision: 5, counters: { allowed: 11 }, lastError: "jwks fetch failed\nbundle stale" });
    await recordHeartbeat(t.db, agent, { version: "1.3.1", errors: [] });
    [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row).toMatchObject({ version: "1.3.1", bundleRevision: null, counters: {}, lastError: null });
  });

  it("rejects bad or oversized reports", () => {
    const ok = { version: "1.0.0", bundleRevision: 1, counters: { allowed: 1 } };
    expect(heartbeatInput.safeParse(ok).success).toBe(true);
    const bad: [string, unknown][] = [
      ["missing version", { counters: {} }],
      ["empty version", { ...ok, version: " " }],
      ["long version", { ...ok, version: "1".repeat(65) }],
      ["negative revision", { ...ok, bundleRevision: -1 }],
      ["fractional revision", { ...ok, bundleRevision: 1.5 }],
      ["string counter", { ...ok, counters: { allowed: "1" } }],
      ["negative counter", { ...ok, counters: { allowed: -1 } }],
      ["fractional counter", { ...ok, counters: { allowed: 0.5 } }],
      ["huge counter", { ...ok, counters: { allowed: 2 ** 60 } }],
      ["bad counter name", { ...ok, counters: { "no spaces": 1 } }],
      ["long counter name", { ...ok, counters: { ["c".repeat(65)]: 1 } }],
      ["too many counters", { ...ok, counters: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`c${i}`, i])) }],
      ["too many errors", { ...ok, errors: Array.from({ length: 21 }, () => "e") }],
      ["long error", { ...ok, errors: ["e".repeat(1001)] }],
      ["non-string error", { ...ok, errors: [42] }],
    ];
    for (const [why, body] of bad) expect(heartbeatInput.safeParse(body).success, why).toBe(false);
    expect(heartbeatInput.safeParse({ ...ok, counters: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`c${i}`, i])) }).success).toBe(true);
  });

  it("the service validates too, and a revoked agent's heartbeat changes nothing", async () => {
    const { agentId, agentKey } = await enrolled();
    const agent = (await authenticateAgent(t.db, agentKey))!;
    await expect(recordHeartbeat(t.db, agent, { version: "1", counters: { x: -1 } })).rejects.toBeInstanceOf(ZodError);
    await revokeAgent(owner.ctx, agentId);
    await recordHeartbeat(t.db, agent, { version: "9.9.9" });
    const [row] = await t.db.select().from(agents).where(eq(agents.id, agentId));
    expect(row!.version).toBe("1.2.3");
  });
});
