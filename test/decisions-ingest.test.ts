import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { and, count, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, grants, oauthClients, type Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { decodeBatch, ingestDecisions, MAX_ARGS_BYTES, uuidv7Time } from "@/lib/decisions/ingest";
import { dropPartitionsBefore } from "@/lib/decisions/partitions";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

/** A UUIDv7 for a given instant (the agent makes them with the uuidv7 package). */
const idAt = (ms: number) => {
  const hex = ms.toString(16).padStart(12, "0") + "7" + randomBytes(2).toString("hex").slice(1) + ((8 + (randomBytes(1)[0]! % 4)).toString(16)) + randomBytes(8).toString("hex").slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};

describe("decision ingestion", () => {
  let t: TestDb;
  let agent: Pick<Agent, "id" | "fleetId">;
  let other: Pick<Agent, "id" | "fleetId">;
  let serverId: string;
  let otherServerId: string;
  let tenantId: string;
  const line = (over: Record<string, unknown> = {}) => JSON.stringify({ id: idAt(Date.now()), serverId, tenantId: "ten_x", method: "tools/call", tool: "list_tickets", user: "alice", client: "claude", scopes: ["tickets:read"], outcome: "allow", determining: ["scope:x"], latencyUs: 120, ...over });
  const parts = async () => {
    const r = (await t.db.execute(sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'decisions'`)) as unknown as { rows?: { name: string }[] } | { name: string }[];
    return (Array.isArray(r) ? r : (r.rows ?? [])).map((x) => x.name);
  };
  const dayName = (ms: number) => `decisions_${new Date(ms).toISOString().slice(0, 10).replaceAll("-", "")}`;
  const stored = async () => Number((await t.db.select({ n: count() }).from(decisions))[0]!.n);

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    const tenant = await makeTenant(t.db, owner.actor);
    tenantId = tenant.id;
    serverId = (await makeServer(owner.ctx, tenant.id))!.id;
    otherServerId = (await makeServer(owner.ctx, tenant.id))!.id;
    const enroll = async (servers: string[]) => {
      const fleet = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: servers }))!;
      const tok = await createEnrollmentToken(owner.ctx, fleet.id);
      const e = await enrollAgent(t.db, { token: tok.token, name: uniq("agent-"), version: "t" });
      return { id: e.agentId, fleetId: e.fleetId };
    };
    agent = await enroll([serverId]);
    other = await enroll([otherServerId]);
  });
  afterAll(() => t.close());

  it("stores a batch once, however often it is sent", async () => {
    const batch = [line(), line({ outcome: "deny", reason: "denied by policy" }), line({ tool: null, method: "tools/list" })].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 3, duplicates: 0 });
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 0, duplicates: 3 });
    expect(await stored()).toBe(3);
  });

  it("takes gzip, and the agent and fleet from the authenticated agent", async () => {
    const id = idAt(Date.now());
    const body = gzipSync(Buffer.from(`${line({ id, agentId: "agt_forged" })}\n`));
    await expectAppError(ingestDecisions(t.db, agent, decodeBatch(body, "gzip")), "validation_failed"); // unknown key agentId: strict
    expect(await ingestDecisions(t.db, agent, decodeBatch(gzipSync(Buffer.from(line({ id }))), "gzip"))).toEqual({ accepted: 1, duplicates: 0 });
    const [row] = await t.db.select().from(decisions).where(eq(decisions.id, id));
    expect(row).toMatchObject({ agentId: agent.id, fleetId: agent.fleetId, at: new Date(uuidv7Time(id)) });
    expect(() => decodeBatch(Buffer.from("not gzip"), "gzip")).toThrow(/corrupt/);
  });

  it("rejects the whole batch when one line is invalid, naming it", async () => {
    const before = await stored();
    const err = await expectAppError(ingestDecisions(t.db, agent, [line(), '{"id":"nope"}', line({ outcome: "maybe" }), "{oops"].join("\n")), "validation_failed");
    const paths = err.issues!.map((i) => i.path);
    expect(paths.some((p) => p.startsWith("line 2"))).toBe(true);
    expect(paths).toContain("line 3.outcome");
    expect(paths).toContain("line 4");
    expect(paths.some((p) => p.startsWith("line 1"))).toBe(false);
    expect(await stored()).toBe(before);
  });

  it("refuses decisions about servers outside the agent's fleet, and ids from the future", async () => {
    const before = await stored();
    await expectAppError(ingestDecisions(t.db, other, line()), "validation_failed");
    await expectAppError(ingestDecisions(t.db, agent, line({ id: idAt(Date.now() + 3_600_000) })), "validation_failed");
    expect(await stored()).toBe(before);
  });

  it("partitions by day and drops whole old partitions for retention", async () => {
    const old = idAt(Date.now() - 40 * 86_400_000);
    expect(await ingestDecisions(t.db, agent, line({ id: old }))).toEqual({ accepted: 1, duplicates: 0 });
    expect((await parts()).length).toBeGreaterThanOrEqual(2);
    const dropped = await dropPartitionsBefore(t.db, 30);
    expect(dropped).toHaveLength(1);
    expect((await t.db.select().from(decisions).where(eq(decisions.id, old))).length).toBe(0);
    expect(await stored()).toBeGreaterThan(0);
  });

  it("stores the decision's context, and refuses unknown context fields", async () => {
    const id = idAt(Date.now());
    const context = { groups: ["eng", "oncall"], actors: ["svc-bot"], token: { iss: "https://idp.example.com", iat: 1_790_000_000, exp: 1_790_003_600 }, ip: "10.1.2.3", masked: ["args.password"] };
    expect(await ingestDecisions(t.db, agent, line({ id, context, args: { password: "***", q: "open" } }))).toEqual({ accepted: 1, duplicates: 0 });
    const [row] = await t.db.select().from(decisions).where(eq(decisions.id, id));
    expect(row!.context).toEqual(context);
    expect(row!.args).toEqual({ password: "***", q: "open" });
    const noContext = idAt(Date.now());
    await ingestDecisions(t.db, agent, line({ id: noContext }));
    expect((await t.db.select().from(decisions).where(eq(decisions.id, noContext)))[0]!.context).toBeNull();
    const err = await expectAppError(ingestDecisions(t.db, agent, line({ context: { groups: ["a"], secret: "x" } })), "validation_failed");
    expect(err.issues![0]!.path).toBe("line 1.context");
    const tooMany = await expectAppError(ingestDecisions(t.db, agent, line({ context: { actors: Array.from({ length: 21 }, (_, i) => `a${i}`) } })), "validation_failed");
    expect(tooMany.issues![0]!.path).toBe("line 1.context.actors");
  });

  it("refuses args over 16 KiB of JSON with a clear message, counting UTF-8 bytes", async () => {
    const before = await stored();
    // 6,000 three-byte characters: 6,000 UTF-16 units but 18,000 bytes.
    const err = await expectAppError(ingestDecisions(t.db, agent, [line(), line({ args: { note: "€".repeat(6000) } })].join("\n")), "validation_failed");
    expect(err.issues).toEqual([{ path: "line 2.args", message: expect.stringMatching(/at most 16 KiB/) }]);
    expect(await stored()).toBe(before);
    // Just under the cap is fine.
    const fits = { note: "x".repeat(MAX_ARGS_BYTES - 20) };
    expect(await ingestDecisions(t.db, agent, line({ args: fits }))).toEqual({ accepted: 1, duplicates: 0 });
  });

  it("stores a decision older than every partition (agent offline for weeks) in a partition made for it", async () => {
    const when = Date.now() - 61 * 86_400_000;
    expect(await parts()).not.toContain(dayName(when));
    const id = idAt(when);
    expect(await ingestDecisions(t.db, agent, line({ id }))).toEqual({ accepted: 1, duplicates: 0 });
    expect(await parts()).toContain(dayName(when));
    const [row] = await t.db.select({ at: decisions.at }).from(decisions).where(eq(decisions.id, id));
    expect(row!.at.getTime()).toBe(when);
  });

  it("refuses a decision older than the retention instead of recreating a dropped partition", async () => {
    const when = Date.now() - 91 * 86_400_000; // default retention: 90 days
    const before = await parts();
    const err = await expectAppError(ingestDecisions(t.db, agent, [line(), line({ id: idAt(when) })].join("\n")), "validation_failed");
    expect(err.issues).toEqual([{ path: "line 2.id", message: "the decision is older than the 90-day retention; it cannot be stored" }]);
    expect(await parts()).toEqual(before);
  });

  it("learns grants from newly stored decisions only: a retried batch counts no call twice", async () => {
    const user = uniq("learner-");
    const mine = (over: Record<string, unknown> = {}) => line({ id: idAt(Date.now()), tenantId, user, client: "claude", outcome: "allow", ...over });
    const dup = mine();
    const batch = [dup, dup, mine(), mine({ outcome: "deny" })].join("\n");
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 3, duplicates: 1 });
    const grant = async () => (await t.db.select().from(grants).where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user))))[0];
    expect((await grant())!.calls).toBe(2);
    expect(await ingestDecisions(t.db, agent, batch)).toEqual({ accepted: 0, duplicates: 4 });
    expect((await grant())!.calls).toBe(2);
    expect(await ingestDecisions(t.db, agent, [batch, mine()].join("\n"))).toEqual({ accepted: 1, duplicates: 4 });
    expect((await grant())!.calls).toBe(3);
    expect((await t.db.select().from(oauthClients).where(and(eq(oauthClients.tenantId, tenantId), eq(oauthClients.clientId, "claude")))).length).toBe(1);
  });

  it("stores a big batch in two parts at once: a line repeated across the parts is stored and learned once", async () => {
    const user = uniq("bulk-");
    const lines = Array.from({ length: 2999 }, (_, i) => line({ id: idAt(Date.now() - i), tenantId, user, client: "bulk-client", outcome: "allow" }));
    lines.push(lines[0]!); // the first part's first line, again in the second part
    const before = await stored();
    expect(await ingestDecisions(t.db, agent, lines.join("\n"))).toEqual({ accepted: 2999, duplicates: 1 });
    expect(await stored()).toBe(before + 2999);
    const grant = async () => (await t.db.select().from(grants).where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user))))[0]!;
    expect((await grant()).calls).toBe(2999);
    // One transaction instead of two: the same answer for a resend.
    expect(await ingestDecisions(t.db, agent, lines.join("\n"), Date.now(), { parts: 1 })).toEqual({ accepted: 0, duplicates: 3000 });
    expect((await grant()).calls).toBe(2999);
  });
});
