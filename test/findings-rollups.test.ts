/**
 * Issue 15: the least-privilege findings and the decision group-by read the
 * rollups, and answer exactly what the raw log answers. On a seeded month
 * (test/least-privilege-fixture.ts) plus noise around it (decisions before
 * the window and in the window's first, partial day; other methods naming a
 * tool; tools/call without a tool name; no tenant, user or client, as the
 * gate's refusals are logged; several scope sets; every outcome; resent
 * duplicates), computeFindings from the rollups equals computeFindings from
 * the raw rows, each usage read equals its raw form for windows that start
 * mid-day and on a day boundary, and group-by tool / user / client from the
 * rollups equals the raw scan. Runs on PostgreSQL (DATABASE_URL) and PGlite.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import { decisionGroupQuery, groupDecisions, groupFromRollups } from "@/lib/decisions/group";
import { execRows } from "@/lib/decisions/rollups";
import { computeFindings, DEFAULT_SETTINGS } from "@/lib/findings/compute";
import { lastScopeUseBefore, lastToolCallBefore, usageSince } from "@/lib/findings/usage";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { insertDecisions, type RowSpec } from "./decision-rows";
import { seedMonth, TICKET_SCOPES, type SeededMonth } from "./least-privilege-fixture";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const H = 3_600_000;
const DAY = 24 * H;
// Not on an hour or a day: windows start mid-day and mid-hour.
const now = new Date(Math.floor(Date.now() / H) * H + 23 * 60_000 + 4_321);

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let seed: SeededMonth;

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  const a = await makeTenant(t.db, owner.actor, "Acme");
  const b = await makeTenant(t.db, owner.actor, "Beta");
  adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
  seed = await seedMonth(owner.ctx, a.id, b.id, kek, { now });

  // Noise that keeps the seeded findings but moves their evidence when a window edge is read wrong:
  // before the window, every tool of the mapping is used (the "last used" evidence); inside it (many
  // rows in its first, partial day), only what the seed's callers already use, plus gate refusals (no
  // tenant, user or client), other methods naming an unused tool, and tools/call without a tool name.
  const r = rng(1515);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const allTools = [...new Set(Object.values(TICKET_SCOPES).flat())];
  const windowStart = now.getTime() - 30 * DAY;
  const inWindow: [string, string, string, string[], "allow" | "deny"][] = [
    ["alice", "cli-1", "list_tickets", ["tickets.read", "tickets.write"], "allow"],
    ["alice", "cli-1", "get_ticket", ["tickets.read", "tickets.write"], "allow"],
    ["alice", "cli-1", "create_ticket", ["tickets.read", "tickets.write"], "allow"],
    ["bob", "cli-2", "list_tickets", ["tickets.read", "tickets.write", "admin"], "allow"],
    ["carol", "cli-4", "close_ticket", ["admin"], "deny"],
  ];
  const specs: RowSpec[] = Array.from({ length: 1500 }, (_, i) => {
    const base = { fleetId: seed.fleetId, serverId: seed.ticketsServer, tenantId: seed.tenantA, method: "tools/call" };
    const where = i % 3;
    if (where === 0) {
      // Before the window (up to 10 days before it, some in its first day before `since`).
      const atMs = windowStart - Math.floor(r() * (i % 2 ? 10 * DAY : 12 * H)) - 1;
      return {
        ...base,
        atMs,
        tool: pick(allTools),
        userId: pick(["alice", "bob", "dave"]),
        clientId: pick(["cli-1", "cli-3"]),
        scopes: pick([["tickets.read"], ["admin"], ["tickets.write", "admin"]]),
        outcome: pick(["allow", "allow", "deny"] as const),
      };
    }
    const atMs = where === 1 ? windowStart + Math.floor(r() * 18 * H) : now.getTime() - Math.floor(r() * 30 * DAY);
    if (i % 29 === 0) return { ...base, atMs, tenantId: null, userId: null, clientId: null, tool: pick([null, "list_tickets"]), outcome: "deny" as const }; // a gate refusal
    if (i % 17 === 0) return { ...base, atMs, method: "resources/read", tool: "purge", userId: "bob", clientId: "cli-2", outcome: "allow" as const };
    if (i % 23 === 0) return { ...base, atMs, tool: "", userId: "alice", clientId: "cli-1", scopes: ["admin"], outcome: "deny" as const };
    if (i % 7 === 0)
      return { ...base, atMs, serverId: seed.wikiServer, tenantId: seed.tenantB, tool: "read_page", userId: "wendy", clientId: "wcli", scopes: ["wiki.read", "wiki.write"], outcome: "allow" as const };
    const [userId, clientId, tool, scopes, outcome] = pick(inWindow);
    return { ...base, atMs, userId, clientId, tool, scopes, outcome: i % 11 === 0 ? ("error" as const) : outcome };
  });
  await insertDecisions(t.db, specs);
  // A resend: the same rows again are skipped by the primary key and counted once.
  await t.db.execute(sql`insert into decisions select * from decisions where method = 'resources/read' on conflict do nothing`);
}, 180_000);
afterAll(() => t?.close());

const sortBy = <T>(xs: T[], key: (x: T) => string) => [...xs].sort((a, z) => key(a).localeCompare(key(z)));
const json = (x: unknown) => JSON.stringify(x);

describe("findings from the usage rollup", () => {
  it("the rollup equals the raw rows on every key, gate refusals without a tenant included", async () => {
    const diff = await execRows<Record<string, unknown>>(
      t.db,
      sql`with raw as (
            select date_trunc('day', at, 'UTC') as day, coalesce(tenant_id, '') as tenant_id, server_id, coalesce(tool, '') as tool, coalesce(user_id, '') as user_id,
                   coalesce(client_id, '') as client_id, method, scopes,
                   count(*) filter (where outcome = 'allow') as allow, count(*) filter (where outcome <> 'allow') as refused, max(at) as last_at, max(id) as last_id
            from decisions group by 1, 2, 3, 4, 5, 6, 7, 8)
          (select * from raw except select day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny + error, last_at, last_id from decision_usage)
          union all
          (select day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny + error, last_at, last_id from decision_usage except select * from raw)`,
    );
    expect(diff).toEqual([]);
    const n = (await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from decision_usage where tenant_id = '' and user_id = ''`))[0]!.n;
    expect(Number(n)).toBeGreaterThan(0);
  });

  for (const [label, sinceOf] of [
    ["a window starting mid-day", () => new Date(now.getTime() - 30 * DAY)],
    ["a window starting on a day boundary", () => new Date(Math.floor((now.getTime() - 30 * DAY) / DAY) * DAY)],
    ["a 7-day window", () => new Date(now.getTime() - 7 * DAY - 5 * H)],
  ] as const) {
    it(`usage reads equal their raw form (${label})`, async () => {
      const since = sinceOf();
      const servers = [seed.ticketsServer, seed.wikiServer];
      const fast = await usageSince(t.db, servers, since);
      const raw = await usageSince(t.db, servers, since, { raw: true });
      const key = (u: { tenantId: string | null; serverId: string; tool: string; userId: string | null; clientId: string | null; scopes: string[] }) =>
        json([u.tenantId, u.serverId, u.tool, u.userId, u.clientId, u.scopes]);
      expect(sortBy(fast.rows, key)).toEqual(sortBy(raw.rows, key));
      expect(fast.rows.length).toBeGreaterThan(5);
      const tools = [...new Set(Object.values(TICKET_SCOPES).flat())];
      for (const own of [seed.tenantA, seed.tenantB]) {
        for (const s of servers) {
          const names = s === seed.wikiServer ? ["read_page", "search", "edit_page", "delete_page"] : tools;
          expect(await lastScopeUseBefore(t.db, s, names, since, own)).toEqual(await lastScopeUseBefore(t.db, s, names, since, own, { raw: true }));
          expect(await lastToolCallBefore(t.db, s, names, since, own)).toEqual(await lastToolCallBefore(t.db, s, names, since, own, { raw: true }));
        }
      }
      // Something before the window exists, so "last used" is really compared.
      expect((await lastToolCallBefore(t.db, seed.ticketsServer, tools, since, seed.tenantA)).size).toBeGreaterThan(0);
    });
  }

  it("computeFindings from the rollups equals computeFindings from the raw log (every finding, its evidence, the scores)", async () => {
    for (const settings of [new Map(), new Map([[seed.tenantA, { ...DEFAULT_SETTINGS, unusedDays: 7 }]])]) {
      const opts = { tenantIds: [seed.tenantA, seed.tenantB], global: true, settings, now };
      const fast = await computeFindings(t.db, opts);
      const raw = await computeFindings(t.db, { ...opts, raw: true });
      expect(fast.findings).toEqual(raw.findings);
      expect(fast.scores).toEqual(raw.scores);
      expect(fast.truncated).toBe(raw.truncated);
      const kinds = new Set(fast.findings.map((f) => f.kind));
      for (const k of ["unused_scope_mapping", "uncalled_tool", "over_broad_user", "over_broad_client"]) expect(kinds.has(k as never)).toBe(true);
      expect(fast.findings.some((f) => f.kind === "unused_scope_mapping" && f.evidence.lastUsedAt !== null && f.evidence.calls > 0)).toBe(true);
      expect(fast.findings.some((f) => f.evidence.exampleDecisionIds.length > 0)).toBe(true);
    }
  });
});

describe("group-by from the rollups", () => {
  const A = () => seed.tenantA;
  const cases: [string, () => Record<string, unknown>][] = [
    ["tool, 40 days", () => ({ by: "tool", from: new Date(now.getTime() - 40 * DAY).toISOString() })],
    ["tool, 30 days, partial hours at both ends", () => ({ by: "tool", from: new Date(now.getTime() - 30 * DAY - 17 * 60_000).toISOString(), to: now.toISOString() })],
    ["tool, tenant A, outcome deny", () => ({ by: "tool", tenantId: A(), outcome: "deny", from: new Date(now.getTime() - 35 * DAY).toISOString() })],
    ["tool, server + tool", () => ({ by: "tool", serverId: seed.ticketsServer, tool: "list_tickets", from: new Date(now.getTime() - 35 * DAY).toISOString() })],
    ["user, 40 days", () => ({ by: "user", from: new Date(now.getTime() - 40 * DAY).toISOString() })],
    ["user, default 24 h", () => ({ by: "user" })],
    ["user, tenant A, outcome error", () => ({ by: "user", tenantId: A(), outcome: "error", from: new Date(now.getTime() - 31 * DAY).toISOString() })],
    ["user, one user", () => ({ by: "user", user: "bob", from: new Date(now.getTime() - 31 * DAY).toISOString() })],
    ["client, 40 days, allow", () => ({ by: "client", outcome: "allow", from: new Date(now.getTime() - 40 * DAY).toISOString() })],
    ["client, tenant A, 3 days", () => ({ by: "client", tenantId: A(), from: new Date(now.getTime() - 3 * DAY - 5 * H).toISOString() })],
  ];
  for (const [label, q] of cases) {
    it(`${label}: equals the raw scan`, async () => {
      const query = decisionGroupQuery.parse({ limit: 50, ...q() });
      expect(groupFromRollups(query)).toBe(true);
      for (const who of [owner, adminA]) {
        const fast = await groupDecisions(who.ctx, query, now.getTime());
        const raw = await groupDecisions(who.ctx, query, now.getTime(), { raw: true });
        expect(fast.source).toBe("rollups");
        expect(raw.source).toBe("raw");
        expect({ ...fast, source: "raw" }).toEqual(raw);
      }
    });
  }

  it("groups without a user, and the top-N cut, match the raw scan", async () => {
    const q = decisionGroupQuery.parse({ by: "user", limit: 2, from: new Date(now.getTime() - 40 * DAY).toISOString() });
    const fast = await groupDecisions(owner.ctx, q, now.getTime());
    expect({ ...fast, source: "raw" }).toEqual(await groupDecisions(owner.ctx, q, now.getTime(), { raw: true }));
    const all = await groupDecisions(owner.ctx, { ...q, limit: 50 }, now.getTime());
    expect(all.groups.some((g) => g.key === null)).toBe(true);
    // The window counted is the filter's widened to whole UTC days (40 days: day rows only).
    expect([fast.from, fast.to]).toEqual([new Date(Math.floor((now.getTime() - 40 * DAY) / DAY) * DAY), new Date(Math.ceil(now.getTime() / DAY) * DAY)].map((d) => d.toISOString()));
    const n = (await execRows<{ n: string }>(t.db, sql`select count(*)::text as n from ${decisions} where at >= ${fast.from}::timestamptz and at < ${fast.to}::timestamptz`))[0]!.n;
    expect(fast.total).toBe(Number(n));
  });

  it("filters the rollups do not keep read the raw rows", () => {
    expect(groupFromRollups(decisionGroupQuery.parse({ by: "user", serverId: "srv_x" }))).toBe(false);
    expect(groupFromRollups(decisionGroupQuery.parse({ by: "tool", user: "bob" }))).toBe(false);
    expect(groupFromRollups(decisionGroupQuery.parse({ by: "client", q: "ticket" }))).toBe(false);
    expect(groupFromRollups(decisionGroupQuery.parse({ by: "tool", method: "tools/call" }))).toBe(false);
  });
});
