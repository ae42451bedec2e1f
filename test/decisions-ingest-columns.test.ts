/**
 * Ingest's column insert (issue 15): every field of every stored row equals
 * its line exactly (arguments and context as JSON, nulls, defaults, the time
 * from the id to the millisecond), over chunk and part boundaries and for the
 * lines the fast path leaves to zod; a row PostgreSQL refuses is quarantined
 * while the rows around it are stored; a resent batch stores and counts
 * nothing twice (rows, rollups, grants). Runs on PGlite and PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { and, eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisionQuarantine, decisions, grants, type Agent } from "@/db/schema";
import { enrollAgent } from "@/lib/agents/service";
import { ingestDecisions, uuidv7Time } from "@/lib/decisions/ingest";
import { execRows } from "@/lib/decisions/rollups";
import { fastDecisionLine } from "@/lib/enforcement/decision-record";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type TestDb } from "./db";
import { makeServer } from "./fleet-helpers";

const idAt = (ms: number) => {
  const hex = ms.toString(16).padStart(12, "0") + "7" + randomBytes(2).toString("hex").slice(1) + (8 + (randomBytes(1)[0]! % 4)).toString(16) + randomBytes(8).toString("hex").slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};

/** Deterministic pseudo-random numbers (a failing run can be replayed). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

let t: TestDb;
let agent: Pick<Agent, "id" | "fleetId">;
let tenantId: string;
let serverId: string;

beforeAll(async () => {
  t = await createTestDb();
  const owner = await makeUser(t.db, { role: "owner" });
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  serverId = (await makeServer(owner.ctx, tenantId))!.id;
  const fleet = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverId] }))!;
  const tok = await createEnrollmentToken(owner.ctx, fleet.id);
  const e = await enrollAgent(t.db, { token: tok.token, name: uniq("agent-"), version: "t" });
  agent = { id: e.agentId, fleetId: e.fleetId };
});
afterAll(() => t?.close());

/** A varied line: every nullable field null or absent sometimes, JSON that is awkward to quote, some lines only zod decides. */
function variedLine(r: () => number, at: number, user: string): Record<string, unknown> {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const l: Record<string, unknown> = { id: idAt(at), serverId, method: pick(["tools/call", "tools/list", "(gate)"]), outcome: pick(["allow", "allow", "deny", "error"]) };
  if (r() < 0.9) l.tenantId = tenantId;
  else if (r() < 0.5) l.tenantId = null;
  if (r() < 0.8) l.tool = pick(["list_tickets", 'quote"d\\tool', "ünïcode-tööl", "{braces}", "NULL"]);
  if (r() < 0.7) l.user = r() < 0.9 ? user : null;
  if (r() < 0.7) l.client = pick(["claude", 'cli"ent', "https://app.example.com/c.json", null]);
  if (r() < 0.8) l.scopes = pick([[], ["tickets:read"], ["a", 'b"c', "d\\e", "{x,y}"]]);
  if (r() < 0.8) l.bundleRevision = pick([0, 7, null, 2 ** 31 - 1]);
  if (r() < 0.8) l.reason = pick(["", "allowed by scope", 'said "no", then \\ yes', "line\nbreak\ttab"]);
  if (r() < 0.8) l.determining = pick([[], ["pol_1"], ['pol "q"', "NULL", "null"]]);
  if (r() < 0.8) l.latencyUs = pick([0, 150, null, 2 ** 31 - 1]);
  const argsKind = r();
  if (argsKind < 0.15) l.args = null;
  else if (argsKind < 0.3) l.args = {};
  else if (argsKind < 0.45)
    l.args = { text: "emoji 😀 and é", nested: { list: [1, 2.5, -3e-7, true, null, "x"] } }; // surrogates: zod decides
  else if (argsKind < 0.55)
    l.args = { ctrl: "bell\u0007 and \\u0000 as text", q: '"quoted"' }; // an escape in the JSON text: zod decides
  else if (argsKind < 0.9) l.args = { status: "open", project: `p${Math.floor(r() * 50)}`, limit: 20, deep: { a: { b: { c: ["{", "}", ",", "\\", '"'] } } } };
  const ctxKind = r();
  if (ctxKind < 0.2) l.context = null;
  else if (ctxKind < 0.8)
    l.context = { groups: ["eng", 'q"g'], token: { iss: "https://idp.example.com", iat: 1_800_000_000, exp: 1_800_003_600 }, ip: "203.0.113.9", masked: ["args.secret"], repeated: 3 };
  else if (ctxKind < 0.9) l.context = { traceId: randomBytes(16).toString("hex"), actors: ["svc-a"] };
  return l;
}

/** The row as the line says it must be stored (the schema's defaults filled in). */
const expected = (l: Record<string, unknown>) => ({
  id: l.id,
  at: uuidv7Time(l.id as string),
  agentId: agent.id,
  fleetId: agent.fleetId,
  bundleRevision: l.bundleRevision ?? null,
  tenantId: l.tenantId ?? null,
  serverId: l.serverId,
  method: l.method,
  tool: l.tool ?? null,
  userId: l.user ?? null,
  clientId: l.client ?? null,
  scopes: l.scopes ?? [],
  outcome: l.outcome,
  reason: l.reason ?? "",
  determining: l.determining ?? [],
  args: l.args ?? null,
  context: l.context ?? null,
  latencyUs: l.latencyUs ?? null,
});

const storedRows = async (ids: string[]) => {
  const out = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = await t.db
      .select()
      .from(decisions)
      .where(inArray(decisions.id, ids.slice(i, i + 1000)));
    for (const r of rows) {
      const { receivedAt: _r, at, ...rest } = r;
      out.set(r.id, { ...rest, at: at.getTime() });
    }
  }
  return out;
};

const counts = async () => {
  const [c] = await execRows<{ d: number; r: number; a: number; u: number; g: number }>(
    t.db,
    sql`select (select count(*)::int from decisions) as d, (select coalesce(sum(allow + deny + error), 0)::int from decision_rollups where grain = 'day') as r,
      (select coalesce(sum(allow + deny + error), 0)::int from decision_actor_rollups where grain = 'day') as a,
      (select coalesce(sum(allow + deny + error), 0)::int from decision_usage) as u, (select coalesce(sum(calls), 0)::int from grants) as g`,
  );
  return c!;
};

describe("ingest stores every field as sent, in columns", () => {
  it("stores 6,000 varied lines exactly (two chunks in one part, then two parts), and a resend changes nothing", async () => {
    const r = rng(15);
    const user = uniq("col-");
    const now = Date.now();
    const lines = Array.from({ length: 6000 }, (_, i) => variedLine(r, now - 3 * 3_600_000 + i * 997, user));
    // Both checks are exercised: lines the fast path takes and lines it leaves to zod.
    const viaZod = lines.filter((l) => fastDecisionLine(JSON.parse(JSON.stringify(l))) === null).length;
    expect(viaZod).toBeGreaterThan(500);
    expect(viaZod).toBeLessThan(5500);
    const first = lines.slice(0, 3000);
    const second = lines.slice(3000);
    const text = (ls: Record<string, unknown>[]) => ls.map((l) => JSON.stringify(l)).join("\n");
    const before = await counts();
    // 3,000 rows in one part: a chunk of 5,000 holds them; CHUNK_ROWS splits the 6,000 below.
    expect(await ingestDecisions(t.db, agent, text(first), Date.now(), { parts: 1 })).toEqual({ accepted: 3000, duplicates: 0, quarantined: 0 });
    expect(await ingestDecisions(t.db, agent, text(lines), Date.now(), { parts: 1 })).toEqual({ accepted: 3000, duplicates: 3000, quarantined: 0 });
    const stored = await storedRows(lines.map((l) => l.id as string));
    expect(stored.size).toBe(6000);
    for (const l of lines) expect(stored.get(l.id as string)).toEqual(expected(l));
    // A missing args or context is SQL NULL, never a JSON null (which reads back as null too).
    const [nulls] = await execRows<{ n: number }>(t.db, sql`select count(*)::int as n from decisions where jsonb_typeof(args) = 'null' or jsonb_typeof(context) = 'null'`);
    expect(nulls!.n).toBe(0);
    const after = await counts();
    expect(after.d - before.d).toBe(6000);
    expect(after.r - before.r).toBe(6000);
    expect(after.u - before.u).toBe(6000);
    const withUser = lines.filter((l) => l.user != null).length;
    const withClient = lines.filter((l) => l.client != null).length;
    expect(after.a - before.a).toBe(withUser + withClient);
    const learned = lines.filter((l) => l.tenantId && l.user && l.client && l.outcome === "allow").length;
    expect(after.g - before.g).toBe(learned);
    // The whole batch again, in two parts at once: duplicates only, nothing counted twice.
    expect(await ingestDecisions(t.db, agent, text([...second, ...first]))).toEqual({ accepted: 0, duplicates: 6000, quarantined: 0 });
    expect(await counts()).toEqual(after);
  });

  it("quarantines a row PostgreSQL refuses (an int4 overflow the line check allows) and stores the rows around it, once", async () => {
    const user = uniq("iso-");
    const now = Date.now();
    const ok = (i: number, over: Record<string, unknown> = {}) =>
      JSON.stringify({ id: idAt(now - i), serverId, tenantId, method: "tools/call", tool: "t", user, client: "claude", outcome: "allow", args: { i }, ...over });
    const refusedLatency = ok(1, { latencyUs: 3_000_000_000 });
    const refusedRevision = ok(2, { bundleRevision: 2 ** 31 });
    const good = Array.from({ length: 2000 }, (_, i) => ok(10 + i));
    // One in each part of a two-part batch (each part is then stored row by row); a line the check refuses
    // first, so a row's place among the stored rows differs from its line's place in the batch.
    const batch = ["{not json", ...good.slice(0, 500), refusedLatency, ...good.slice(500, 1500), refusedRevision, ...good.slice(1500)];
    const before = await counts();
    expect(await ingestDecisions(t.db, agent, batch.join("\n"))).toEqual({ accepted: 2000, duplicates: 0, quarantined: 3 });
    const q = (await t.db.select().from(decisionQuarantine).where(eq(decisionQuarantine.agentId, agent.id))).filter((x) => x.decisionId !== null);
    expect(q.map((x) => x.raw).sort()).toEqual([refusedLatency, refusedRevision].sort());
    const refusedIds = [refusedLatency, refusedRevision].map((l) => (JSON.parse(l) as { id: string }).id);
    expect(q.map((x) => x.decisionId).sort()).toEqual([...refusedIds].sort());
    expect(q.every((x) => /^the database refused it \(SQLSTATE 22003\)$/.test(x.problem))).toBe(true);
    expect((await storedRows(refusedIds)).size).toBe(0);
    const after = await counts();
    expect(after.d - before.d).toBe(2000);
    expect(after.r - before.r).toBe(2000);
    expect(after.g - before.g).toBe(2000);
    // The resend: duplicates counted, the refused lines quarantined again but not stored twice.
    expect(await ingestDecisions(t.db, agent, batch.join("\n"))).toEqual({ accepted: 0, duplicates: 2000, quarantined: 3 });
    expect(await t.db.select().from(decisionQuarantine).where(eq(decisionQuarantine.agentId, agent.id))).toHaveLength(3);
    expect(await counts()).toEqual(after);
    const [g] = await t.db
      .select()
      .from(grants)
      .where(and(eq(grants.tenantId, tenantId), eq(grants.userId, user)));
    expect(g!.calls).toBe(2000);
  }, 60_000);
});
