import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { count, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, type Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { decodeBatch, ingestDecisions, uuidv7Time } from "@/lib/decisions/ingest";
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
  const line = (over: Record<string, unknown> = {}) => JSON.stringify({ id: idAt(Date.now()), serverId, tenantId: "ten_x", method: "tools/call", tool: "list_tickets", user: "alice", client: "claude", scopes: ["tickets:read"], outcome: "allow", determining: ["scope:x"], latencyUs: 120, ...over });
  const stored = async () => Number((await t.db.select({ n: count() }).from(decisions))[0]!.n);

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    const tenant = await makeTenant(t.db, owner.actor);
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
    const parts = async () => {
      const r = (await t.db.execute(sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent where p.relname = 'decisions'`)) as unknown as { rows?: { name: string }[] } | { name: string }[];
      return (Array.isArray(r) ? r : (r.rows ?? [])).map((x) => x.name);
    };
    expect((await parts()).length).toBeGreaterThanOrEqual(2);
    const dropped = await dropPartitionsBefore(t.db, 30);
    expect(dropped).toHaveLength(1);
    expect((await t.db.select().from(decisions).where(eq(decisions.id, old))).length).toBe(0);
    expect(await stored()).toBeGreaterThan(0);
  });
});
