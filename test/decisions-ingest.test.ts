import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { and, count, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisionQuarantine, decisions, grants, oauthClients, type Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { decodeBatch, ingestDecisions, MAX_ARGS_BYTES, uuidv7Time } from "@/lib/decisions/ingest";
import { dropPartitionsBefore } from "@/lib/decisions/partitions";
import { quarantineSummary } from "@/lib/decisions/quarantine";
import { runRetention } from "@/lib/decisions/retention";
import { expectAppError } from "./expect";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

/** A UUIDv7 for a given instant (the agent makes them with the uuidv7 package). */
const idAt = (ms: number) => {
  const hex = ms.toString(16).padStart(12, "0") + "7" + randomBytes(2).toString("hex").slice(1) + (8 + (randomBytes(1)[0]! % 4)).toString(16) + randomBytes(8).toString("hex").slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};

describe("decision ingestion", () => {
  let t: TestDb;
  let agent: Pick<Agent, "id" | "fleetId">;
  let other: Pick<Agent, "id" | "fleetId">;
  let serverId: string;
  let otherServerId: string;
  let tenantId: string;
  let owner: Awaited<ReturnType<typeof makeUser>>;
  let sharedTenantId: string;
  let foreignTenantId: string;
  let sharedServerId: string;
  const line = (over: Record<string, unknown> = {}) =>
    JSON.stringify({
      id: idAt(Date.now()),
      serverId,
      tenantId,
      method: "tools/call",
      tool: "list_tickets",
      user: "alice",
      client: "claude",
      scopes: ["tickets:read"],
      outcome: "allow",
      determining: ["scope:x"],
      latencyUs: 120,
      ...over,
    });
  const parts = async () => {
    const r = (await t.db.execute(
      sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'decisions'`,
    )) as unknown as { rows?: { name: string }[] } | { name: string }[];
    return (Array.isArray(r) ? r : (r.rows ?? [])).map((x) => x.name);
  };
  const dayName = (ms: number) => `decisions_${new Date(ms).toISOString().slice(0, 10).replaceAll("-", "")}`;
  const stored = async () => Number((await t.db.select({ n: count() }).from(decisions))[0]!.n);
  const quarantined = async (agentId = agent.id) => t.db.select().from(decisionQuarantine).where(eq(decisionQuarantine.agentId, agentId));
  const has = async (id: string) => (await t.db.select({ id: decisions.id }).from(decisions).where(eq(decisions.id, id))).length === 1;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    const tenant = await makeTenant(t.db, owner.actor);
    tenantId = tenant.id;
    serverId = (await makeServer(owner.ctx, tenant.id))!.id;
    otherServerId = (await makeServer(owner.ctx, tenant.id))!.id;
    sharedTenantId = (await makeTenant(t.db, owner.actor)).id;
    foreignTenantId = (await makeTenant(t.db, owner.actor)).id;
    // Owned by the foreign tenant, shared with one other: the fleet serves (shared, owner) and (shared, sharedTenant) only.
    sharedServerId = (await makeServer(owner.ctx, sharedTenantId, [tenantId]))!.id;
    const enroll = async (servers: string[]) => {
      const fleet = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: servers }))!;
      const tok = await createEnrollmentToken(owner.ctx, fleet.id);
      const e = await enrollAgent(t.db, { token: tok.token, name: uniq("agent-"), version: "t" });
      return { id: e.agentId, fleetId: e.fleetId };
    };
    agent = await enroll([serverId, sharedServerId]);
    other = await enroll([otherServerId]);
  });
  afterAll(() => t.close());

  it("stores a batch once, however often it is sent", async () => {
    const batch = [line(), line({ outcome: "deny", reason: "denied by policy" }), line({ tool: null, method: "tools/list" })].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 3, duplicates: 0, quarantined: 0 });
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 0, duplicates: 3, quarantined: 0 });
    expect(await stored()).toBe(3);
  });

  it("takes gzip, and the agent and fleet from the authenticated agent", async () => {
    const id = idAt(Date.now());
    const body = gzipSync(Buffer.from(`${line({ id, agentId: "agt_forged" })}\n`));
    // Unknown key agentId (strict): quarantined, not stored.
    expect(await ingestDecisions(t.db, agent, decodeBatch(body, "gzip"))).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    expect(await ingestDecisions(t.db, agent, decodeBatch(gzipSync(Buffer.from(line({ id }))), "gzip"))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
    const [row] = await t.db.select().from(decisions).where(eq(decisions.id, id));
    expect(row).toMatchObject({ agentId: agent.id, fleetId: agent.fleetId, at: new Date(uuidv7Time(id)) });
    expect(() => decodeBatch(Buffer.from("not gzip"), "gzip")).toThrow(/corrupt/);
  });

  it("stores the good lines of a batch and quarantines each bad one with its problem (issue 10.2)", async () => {
    const before = await stored();
    const good = [line(), line(), line()];
    const batch = [good[0], '{"id":"nope"}', line({ outcome: "maybe" }), good[1], "{oops", line({ method: "x".repeat(101) }), good[2]].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 3, duplicates: 0, quarantined: 4 });
    expect(await stored()).toBe(before + 3);
    for (const g of good) expect(await has((JSON.parse(g!) as { id: string }).id)).toBe(true);
    const q = await quarantined();
    const problems = q.map((r) => r.problem);
    expect(problems.some((p) => p.startsWith("id:"))).toBe(true);
    expect(problems.some((p) => p.startsWith("outcome:"))).toBe(true);
    expect(problems).toContain("not valid JSON");
    expect(problems.some((p) => p.startsWith("method:"))).toBe(true);
    expect(q.every((r) => r.agentId === agent.id && r.fleetId === agent.fleetId && r.raw.length <= 4096)).toBe(true);
    // A resent batch stores nothing twice and quarantines nothing twice.
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 0, duplicates: 3, quarantined: 4 });
    expect((await quarantined()).length).toBe(q.length);
  });

  it("quarantines what PostgreSQL would refuse (NUL, unpaired surrogates, deep args) instead of failing the batch", async () => {
    let deep: unknown = "x";
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const good = line();
    const batch = [line({ tool: "a\u0000b" }), line({ user: "\ud800" }), line({ args: { k: deep } }), line({ args: { "k\u0000": 1 } }), good].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 1, duplicates: 0, quarantined: 4 });
    expect(await has((JSON.parse(good) as { id: string }).id)).toBe(true);
    // A quarantined raw line is itself stored safely (NUL replaced), and cut to its bound.
    const huge = `{"id": "${"z".repeat(100_000)}\u0000"}`;
    expect(await ingestDecisions(t.db, agent, huge)).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    const row = (await quarantined()).find((r) => r.rawBytes === Buffer.byteLength(huge))!;
    expect(row.raw.length).toBe(4096);
  });

  it("accepts a line only for a (server, tenant) pair the agent's fleet serves (issue 10.5)", async () => {
    const user = uniq("intruder-");
    const foreign = line({ tenantId: foreignTenantId, user, client: "evil-client", outcome: "allow" });
    const otherServer = line({ serverId: otherServerId });
    const onShared = line({ serverId: sharedServerId, tenantId, user, client: "fine-client" });
    const ownerOfShared = line({ serverId: sharedServerId, tenantId: sharedTenantId });
    const noTenant = line({ tenantId: null, outcome: "deny" });
    // Alone, the foreign tenant's line is not stored, and no grant or client is learned into that tenant.
    const alone = await ingestDecisions(t.db, agent, foreign);
    expect(await has((JSON.parse(foreign) as { id: string }).id)).toBe(false);
    expect((await t.db.select().from(grants).where(eq(grants.tenantId, foreignTenantId))).length).toBe(0);
    expect(alone).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    const r = await ingestDecisions(t.db, agent, [foreign, otherServer, onShared, ownerOfShared, noTenant].join("\n"));
    expect(r).toEqual({ accepted: 3, duplicates: 0, quarantined: 2 });
    expect(await has((JSON.parse(onShared) as { id: string }).id)).toBe(true);
    expect(await has((JSON.parse(ownerOfShared) as { id: string }).id)).toBe(true);
    expect(await has((JSON.parse(foreign) as { id: string }).id)).toBe(false);
    expect(await has((JSON.parse(otherServer) as { id: string }).id)).toBe(false);
    const problems = (await quarantined()).map((x) => x.problem);
    expect(problems).toContain("tenantId: that server does not serve this tenant for this agent's fleet");
    expect(problems).toContain("serverId: this agent's fleet does not serve that server");
    // Nothing was learned into the foreign tenant: no grant, no client.
    expect((await t.db.select().from(grants).where(eq(grants.tenantId, foreignTenantId))).length).toBe(0);
    expect((await t.db.select().from(oauthClients).where(eq(oauthClients.tenantId, foreignTenantId))).length).toBe(0);
    expect(
      (
        await t.db
          .select()
          .from(grants)
          .where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user)))
      ).length,
    ).toBe(1);
  });

  it("shows quarantined lines to owners and global auditors only: counts per agent and the most recent with their problem", async () => {
    const bad = line({ outcome: "maybe" });
    await ingestDecisions(t.db, agent, bad);
    const s = await quarantineSummary(owner.ctx, { limit: 5 });
    expect(s.total).toBe((await t.db.select({ n: count() }).from(decisionQuarantine))[0]!.n);
    expect(s.last24h).toBe(s.total);
    expect(s.byAgent.find((r) => r.agentId === agent.id)!.count).toBe((await quarantined()).length);
    expect(s.recent).toHaveLength(5);
    expect(s.recent[0]).toMatchObject({ agentId: agent.id, problem: expect.stringMatching(/^outcome: /), raw: bad });
    const auditor = await makeUser(t.db, { role: "auditor" });
    expect((await quarantineSummary(auditor.ctx, { limit: 0 })).recent).toEqual([]);
    const tenantAdmin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    await expectAppError(quarantineSummary(tenantAdmin.ctx, { limit: 5 }), "forbidden");
  });

  it("keeps quarantined lines as long as the decision retention, no longer", async () => {
    const stale = line({ outcome: "stale" });
    await ingestDecisions(t.db, agent, stale);
    await t.db
      .update(decisionQuarantine)
      .set({ receivedAt: new Date(Date.now() - 91 * 86_400_000) })
      .where(eq(decisionQuarantine.raw, stale));
    const before = (await quarantined()).length;
    await runRetention(t.db);
    const after = await quarantined();
    expect(after.length).toBe(before - 1);
    expect(after.some((r) => r.raw === stale)).toBe(false);
  });

  it("quarantines decisions about servers outside the agent's fleet, and ids from the future", async () => {
    const before = await stored();
    expect(await ingestDecisions(t.db, other, line())).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    expect(await ingestDecisions(t.db, agent, line({ id: idAt(Date.now() + 3_600_000) }))).toEqual({ accepted: 0, duplicates: 0, quarantined: 1 });
    expect(await stored()).toBe(before);
    expect((await quarantined(other.id))[0]!.problem).toBe("serverId: this agent's fleet does not serve that server");
  });

  it("partitions by day and drops whole old partitions for retention", async () => {
    const old = idAt(Date.now() - 40 * 86_400_000);
    expect(await ingestDecisions(t.db, agent, line({ id: old }))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
    expect((await parts()).length).toBeGreaterThanOrEqual(2);
    const dropped = await dropPartitionsBefore(t.db, 30);
    expect(dropped).toHaveLength(1);
    expect((await t.db.select().from(decisions).where(eq(decisions.id, old))).length).toBe(0);
    expect(await stored()).toBeGreaterThan(0);
  });

  it("stores the decision's context, and refuses unknown context fields", async () => {
    const id = idAt(Date.now());
    const context = { groups: ["eng", "oncall"], actors: ["svc-bot"], token: { iss: "https://idp.example.com", iat: 1_790_000_000, exp: 1_790_003_600 }, ip: "10.1.2.3", masked: ["args.password"] };
    expect(await ingestDecisions(t.db, agent, line({ id, context, args: { password: "***", q: "open" } }))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
    const [row] = await t.db.select().from(decisions).where(eq(decisions.id, id));
    expect(row!.context).toEqual(context);
    expect(row!.args).toEqual({ password: "***", q: "open" });
    const noContext = idAt(Date.now());
    await ingestDecisions(t.db, agent, line({ id: noContext }));
    expect((await t.db.select().from(decisions).where(eq(decisions.id, noContext)))[0]!.context).toBeNull();
    const unknownField = line({ context: { groups: ["a"], secret: "x" } });
    expect(await ingestDecisions(t.db, agent, unknownField)).toMatchObject({ accepted: 0, quarantined: 1 });
    const tooMany = line({ context: { actors: Array.from({ length: 21 }, (_, i) => `a${i}`) } });
    expect(await ingestDecisions(t.db, agent, tooMany)).toMatchObject({ accepted: 0, quarantined: 1 });
    const q = await quarantined();
    expect(q.find((r) => r.raw === unknownField)!.problem).toMatch(/^context: /);
    expect(q.find((r) => r.raw === tooMany)!.problem).toMatch(/^context\.actors: /);
  });

  it("refuses args over 16 KiB of JSON with a clear message, counting UTF-8 bytes", async () => {
    const before = await stored();
    // 6,000 three-byte characters: 6,000 UTF-16 units but 18,000 bytes.
    const big = line({ args: { note: "€".repeat(6000) } });
    expect(await ingestDecisions(t.db, agent, [line(), big].join("\n"))).toEqual({ accepted: 1, duplicates: 0, quarantined: 1 });
    expect((await quarantined()).find((r) => r.decisionId === (JSON.parse(big) as { id: string }).id)!.problem).toMatch(/^args: args must be at most 16 KiB/);
    expect(await stored()).toBe(before + 1);
    // Just under the cap is fine.
    const fits = { note: "x".repeat(MAX_ARGS_BYTES - 20) };
    expect(await ingestDecisions(t.db, agent, line({ args: fits }))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
  });

  it("stores a decision older than every partition (agent offline for weeks) in a partition made for it", async () => {
    const when = Date.now() - 61 * 86_400_000;
    expect(await parts()).not.toContain(dayName(when));
    const id = idAt(when);
    expect(await ingestDecisions(t.db, agent, line({ id }))).toEqual({ accepted: 1, duplicates: 0, quarantined: 0 });
    expect(await parts()).toContain(dayName(when));
    const [row] = await t.db.select({ at: decisions.at }).from(decisions).where(eq(decisions.id, id));
    expect(row!.at.getTime()).toBe(when);
  });

  it("refuses a decision older than the retention instead of recreating a dropped partition", async () => {
    const when = Date.now() - 91 * 86_400_000; // default retention: 90 days
    const before = await parts();
    const old = line({ id: idAt(when) });
    expect(await ingestDecisions(t.db, agent, [line(), old].join("\n"))).toEqual({ accepted: 1, duplicates: 0, quarantined: 1 });
    expect((await quarantined()).find((r) => r.raw === old)!.problem).toBe("id: the decision is older than the 90-day retention; it cannot be stored");
    expect(await parts()).toEqual(before);
  });

  it("learns grants from newly stored decisions only: a retried batch counts no call twice", async () => {
    const user = uniq("learner-");
    const mine = (over: Record<string, unknown> = {}) => line({ id: idAt(Date.now()), tenantId, user, client: "claude", outcome: "allow", ...over });
    const dup = mine();
    const batch = [dup, dup, mine(), mine({ outcome: "deny" })].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 3, duplicates: 1, quarantined: 0 });
    const grant = async () =>
      (
        await t.db
          .select()
          .from(grants)
          .where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user)))
      )[0];
    expect((await grant())!.calls).toBe(2);
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 0, duplicates: 4, quarantined: 0 });
    expect((await grant())!.calls).toBe(2);
    expect(await ingestDecisions(t.db, agent, [batch, mine()].join("\n"))).toEqual({ accepted: 1, duplicates: 4, quarantined: 0 });
    expect((await grant())!.calls).toBe(3);
    expect(
      (
        await t.db
          .select()
          .from(oauthClients)
          .where(and(eq(oauthClients.tenantId, tenantId), eq(oauthClients.clientId, "claude")))
      ).length,
    ).toBe(1);
  });

  it("stores a big batch in two parts at once: a line repeated across the parts is stored and learned once", async () => {
    const user = uniq("bulk-");
    const lines = Array.from({ length: 2999 }, (_, i) => line({ id: idAt(Date.now() - i), tenantId, user, client: "bulk-client", outcome: "allow" }));
    lines.push(lines[0]!); // the first part's first line, again in the second part
    const before = await stored();
    expect(await ingestDecisions(t.db, agent, lines.join("\n"))).toEqual({ accepted: 2999, duplicates: 1, quarantined: 0 });
    expect(await stored()).toBe(before + 2999);
    const grant = async () =>
      (
        await t.db
          .select()
          .from(grants)
          .where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user)))
      )[0]!;
    expect((await grant()).calls).toBe(2999);
    // One transaction instead of two: the same answer for a resend.
    expect(await ingestDecisions(t.db, agent, lines.join("\n"), Date.now(), { parts: 1 })).toEqual({ accepted: 0, duplicates: 3000, quarantined: 0 });
    expect((await grant()).calls).toBe(2999);
  });
});
