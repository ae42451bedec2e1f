import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundles } from "@/db/schema";
import { bucketFor, decisionCharts, decisionChartsQuery } from "@/lib/decisions/charts";
import { decisionSearchQuery, encodeCursor, getDecision, searchDecisions } from "@/lib/decisions/query";
import { createFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import type { Ctx } from "@/lib/context";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let auditorB: MadeUser;
let tenantA: string;
let tenantB: string;
let serverA: string;
let serverA2: string;
let serverB: string;
let fleetId: string;
const now = Date.now();
const MIN = 60_000;
const H = 60 * MIN;

const search = (ctx: Ctx, q: Record<string, unknown> = {}) => searchDecisions(ctx, decisionSearchQuery.parse(q));
/** Every id of a filter, following cursors. */
async function all(ctx: Ctx, q: Record<string, unknown> = {}, limit = 200): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await search(ctx, { ...q, limit, cursor });
    ids.push(...page.items.map((i) => i.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return ids;
}

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  auditorB = await makeUser(t.db, { memberships: [[tenantB, "auditor"]] });
  serverA = (await makeServer(owner.ctx, tenantA))!.id;
  serverA2 = (await makeServer(owner.ctx, tenantA))!.id;
  serverB = (await makeServer(owner.ctx, tenantB))!.id;
  fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverA2, serverB] }))!.id;
});
afterAll(() => t.close());

describe("keyset pagination", () => {
  it("returns every row exactly once while newer rows arrive between pages", async () => {
    const tenantId = newId("tenant"); // a tenant of its own so other tests' rows do not mix in
    const base = now - 2 * H;
    // 300 rows, many sharing a millisecond, so the id breaks ties.
    const rows = await insertDecisions(
      t.db,
      Array.from({ length: 300 }, (_, i) => ({ atMs: base + Math.floor(i / 7) * 1000, tenantId, serverId: serverA, fleetId, tool: "t" })),
    );
    const expected = new Set(rows.map((r) => r.id));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await search(owner.ctx, { tenantId, limit: 37, cursor });
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
      // Agents keep reporting: newer rows land while the reader pages back.
      await insertDecisions(
        t.db,
        Array.from({ length: 5 }, (_, i) => ({ atMs: Date.now() - i, tenantId, serverId: serverA, fleetId, tool: "t" })),
      );
    } while (cursor);
    expect(pages).toBe(Math.ceil(300 / 37));
    expect(seen.length).toBe(300);
    expect(new Set(seen).size).toBe(300);
    expect(new Set(seen)).toEqual(expected);
    // Newest first, (at, id) strictly decreasing.
    const ordered = rows.map((r) => ({ at: (r.at as Date).getTime(), id: r.id })).sort((a, b) => b.at - a.at || (b.id < a.id ? -1 : 1));
    expect(seen).toEqual(ordered.map((r) => r.id));
  });

  it("live tail: `after` answers only rows newer than the newest shown", async () => {
    const tenantId = newId("tenant");
    await insertDecisions(
      t.db,
      [0, 1, 2].map((i) => ({ atMs: now - 10 * MIN + i, tenantId, serverId: serverA, fleetId })),
    );
    const first = await search(owner.ctx, { tenantId });
    expect(first.items).toHaveLength(3);
    const newest = first.items[0]!;
    expect((await search(owner.ctx, { tenantId, after: encodeCursor(newest) })).items).toEqual([]);
    const added = await insertDecisions(
      t.db,
      [1, 2].map((i) => ({ atMs: Date.now() + i, tenantId, serverId: serverA, fleetId })),
    );
    const tail = await search(owner.ctx, { tenantId, after: encodeCursor(newest) });
    expect(tail.items.map((i) => i.id)).toEqual([added[1]!.id, added[0]!.id]);
  });

  it("refuses a forged cursor", async () => {
    await expectAppError(search(owner.ctx, { cursor: "bm9wZQ" }), "bad_request");
    await expectAppError(search(owner.ctx, { cursor: Buffer.from("2026-01-01T00:00:00.000Z|a|b").toString("base64url") }), "bad_request");
  });
});

describe("filters", () => {
  let ids: Record<string, string>;
  const tenantFilter = () => ({ tenantId: tenantA });
  beforeAll(async () => {
    const specs = [
      {
        key: "base",
        atMs: now - 30 * MIN,
        tenantId: tenantA,
        serverId: serverA,
        fleetId,
        tool: "list_tickets",
        userId: "alice",
        clientId: "claude",
        outcome: "allow" as const,
        bundleRevision: 1,
        args: { q: "printer" },
      },
      {
        key: "denied",
        atMs: now - 29 * MIN,
        tenantId: tenantA,
        serverId: serverA,
        fleetId,
        tool: "delete_ticket",
        userId: "bob",
        clientId: "claude",
        outcome: "deny" as const,
        bundleRevision: 2,
        reason: "forbidden by policy",
        args: { id: "T-1", note: "50%_off deal" },
      },
      {
        key: "server2",
        atMs: now - 28 * MIN,
        tenantId: tenantA,
        serverId: serverA2,
        fleetId,
        tool: "list_tickets",
        userId: "alice",
        clientId: "cursor",
        outcome: "error" as const,
        bundleRevision: 2,
        args: { note: "50 percent off" },
      },
      { key: "list", atMs: now - 27 * MIN, tenantId: tenantA, serverId: serverA, fleetId, method: "tools/list", tool: null, userId: "carol", clientId: "claude", bundleRevision: 2, args: null },
      { key: "old", atMs: now - 26 * H, tenantId: tenantA, serverId: serverA, fleetId, tool: "list_tickets", userId: "alice", clientId: "claude", bundleRevision: 1, args: { q: "PRINTER jam" } },
    ];
    const rows = await insertDecisions(
      t.db,
      specs.map(({ key: _key, ...s }) => s),
    );
    ids = Object.fromEntries(specs.map((s, i) => [s.key, rows[i]!.id]));
  });
  const expectIds = async (q: Record<string, unknown>, keys: string[]) => expect(new Set(await all(owner.ctx, { ...tenantFilter(), ...q }))).toEqual(new Set(keys.map((k) => ids[k])));

  it("defaults to the last 24 hours; from/to widen or narrow it", async () => {
    await expectIds({}, ["base", "denied", "server2", "list"]);
    await expectIds({ from: new Date(now - 27 * H).toISOString() }, ["base", "denied", "server2", "list", "old"]);
    await expectIds({ from: new Date(now - 27 * H).toISOString(), to: new Date(now - 29 * MIN).toISOString() }, ["base", "old"]);
    await expectAppError(search(owner.ctx, { from: new Date(now).toISOString(), to: new Date(now - H).toISOString() }), "validation_failed");
  });

  it("filters by server, tool, user, client, outcome, revision and method", async () => {
    await expectIds({ serverId: serverA2 }, ["server2"]);
    await expectIds({ tool: "list_tickets" }, ["base", "server2"]);
    await expectIds({ user: "alice" }, ["base", "server2"]);
    await expectIds({ client: "cursor" }, ["server2"]);
    await expectIds({ outcome: "deny" }, ["denied"]);
    await expectIds({ outcome: "error" }, ["server2"]);
    await expectIds({ bundleRevision: "1" }, ["base"]);
    await expectIds({ method: "tools/list" }, ["list"]);
    await expectIds({ tool: "list_tickets", user: "alice", client: "claude" }, ["base"]);
  });

  it("free text matches the arguments case-insensitively, with % and _ taken literally", async () => {
    await expectIds({ q: "PRINTER", from: new Date(now - 27 * H).toISOString() }, ["base", "old"]);
    await expectIds({ q: "50%" }, ["denied"]);
    await expectIds({ q: "50%_off" }, ["denied"]);
    await expectIds({ q: "t_1" }, []); // "_" as a wildcard would match "T-1"
    await expectIds({ q: "T-1" }, ["denied"]);
    expect(() => decisionSearchQuery.parse({ q: "x".repeat(201) })).toThrow();
  });
});

describe("tenant scoping", () => {
  let inA: string;
  let inB: string;
  let noTenant: string;
  beforeAll(async () => {
    const rows = await insertDecisions(t.db, [
      { atMs: now - 5 * MIN, tenantId: tenantA, serverId: serverA, fleetId, tool: "scoped_tool", outcome: "deny", userId: "u-a", clientId: "c-a" },
      { atMs: now - 5 * MIN, tenantId: tenantB, serverId: serverB, fleetId, tool: "scoped_tool", outcome: "deny", userId: "u-b", clientId: "c-b" },
      { atMs: now - 5 * MIN, tenantId: null, serverId: serverA, fleetId, tool: "scoped_tool", outcome: "deny", reason: "unknown tenant" },
    ]);
    [inA, inB, noTenant] = rows.map((r) => r.id) as [string, string, string];
  });

  it("a tenant admin's search holds only their tenant; another tenant's filter is a 404", async () => {
    expect(new Set(await all(adminA.ctx, { tool: "scoped_tool" }))).toEqual(new Set([inA]));
    expect(new Set(await all(auditorB.ctx, { tool: "scoped_tool" }))).toEqual(new Set([inB]));
    expect(new Set(await all(owner.ctx, { tool: "scoped_tool" }))).toEqual(new Set([inA, inB, noTenant]));
    await expectAppError(search(adminA.ctx, { tenantId: tenantB }), "not_found");
    const nobody = await makeUser(t.db);
    expect((await search(nobody.ctx, {})).items).toEqual([]);
  });

  it("details of another tenant's (or a tenant-less) decision are a 404", async () => {
    expect((await getDecision(adminA.ctx, inA)).id).toBe(inA);
    await expectAppError(getDecision(adminA.ctx, inB), "not_found");
    await expectAppError(getDecision(adminA.ctx, noTenant), "not_found");
    await expectAppError(getDecision(owner.ctx, "not-an-id"), "not_found");
    expect((await getDecision(owner.ctx, noTenant)).tenantId).toBeNull();
  });

  it("charts count only the tenant's decisions", async () => {
    const q = decisionChartsQuery.parse({ tool: "scoped_tool" });
    const a = await decisionCharts(adminA.ctx, q);
    expect(a.totals).toEqual({ allow: 0, deny: 1, error: 0 });
    expect(a.topUsers).toEqual([{ user: "u-a", count: 1, denied: 1 }]);
    expect(a.topClients).toEqual([{ client: "c-a", count: 1, denied: 1 }]);
    const all3 = await decisionCharts(owner.ctx, q);
    expect(all3.totals.deny).toBe(3);
    expect(all3.topDeniedTools).toEqual([
      { serverId: serverA, tool: "scoped_tool", count: 2 },
      { serverId: serverB, tool: "scoped_tool", count: 1 },
    ]);
    await expectAppError(decisionCharts(adminA.ctx, decisionChartsQuery.parse({ tenantId: tenantB })), "not_found");
  });
});

describe("charts", () => {
  it("buckets by minute, hour or day from the range, in UTC", async () => {
    const tenantId = newId("tenant");
    const hourStart = Math.floor((now - 3 * H) / H) * H;
    await insertDecisions(t.db, [
      { atMs: hourStart + 1000, tenantId, serverId: serverA, fleetId, tool: "a", outcome: "allow" },
      { atMs: hourStart + 2000, tenantId, serverId: serverA, fleetId, tool: "a", outcome: "deny" },
      { atMs: hourStart + H + 5, tenantId, serverId: serverA, fleetId, tool: "b", outcome: "deny" },
      { atMs: hourStart + H + 6, tenantId, serverId: serverA, fleetId, tool: "b", outcome: "deny" },
    ]);
    const c = await decisionCharts(owner.ctx, decisionChartsQuery.parse({ tenantId }), now);
    expect(c.bucket).toBe("hour");
    expect(c.series).toEqual([
      { t: new Date(hourStart).toISOString(), allow: 1, deny: 1, error: 0 },
      { t: new Date(hourStart + H).toISOString(), allow: 0, deny: 2, error: 0 },
    ]);
    expect(c.topDeniedTools.map((x) => [x.tool, x.count])).toEqual([
      ["b", 2],
      ["a", 1],
    ]);
    expect(bucketFor(new Date(0), new Date(H))).toBe("minute");
    expect(bucketFor(new Date(0), new Date(7 * 24 * H))).toBe("day");
  });
});

describe("decision detail", () => {
  it("shows the determining policies' Cedar text at the enforced revision, the claims and a simulator link", async () => {
    const content = (rev: number) => ({
      manifest: { fleetId, revision: rev },
      cedar: { policies: { "pol_x.0": `// rev ${rev}\nforbid (principal, action, resource) when { context.args.id == "T-${rev}" };` } },
      policies: { "pol_x.0": { name: `No T-${rev}`, kind: "cedar", tenantId: tenantA, serverId: serverA, tools: null } },
    });
    for (const rev of [11, 12]) {
      await t.db.insert(bundles).values({ id: newId("bundle"), fleetId, revision: rev, sha256: `sha-${rev}`, content: content(rev), signature: "sig", keyId: "kid", createdBy: "test" });
    }
    const [row] = await insertDecisions(t.db, [
      {
        atMs: now - MIN,
        tenantId: tenantA,
        serverId: serverA,
        fleetId,
        tool: "delete_ticket",
        userId: "alice",
        clientId: "claude",
        scopes: ["tickets:write"],
        outcome: "deny",
        reason: "forbidden by pol_x.0",
        determining: ["pol_x.0", "gone"],
        bundleRevision: 11,
        args: { id: "T-11", ssn: "[masked]" },
        context: { groups: ["support"], actors: ["agent-7"], token: { iss: "https://idp.example", iat: 1_800_000_000, exp: 1_800_003_600 }, masked: ["ssn"] },
      },
    ]);
    const d = await getDecision(adminA.ctx, row!.id);
    expect(d.policies).toEqual([
      { id: "pol_x.0", name: "No T-11", kind: "cedar", cedar: content(11).cedar.policies["pol_x.0"] },
      { id: "gone", name: null, kind: null, cedar: null },
    ]);
    expect(d.claims).toMatchObject({
      iss: "https://idp.example",
      iat: 1_800_000_000,
      exp: 1_800_003_600,
      user: "alice",
      client: "claude",
      scopes: ["tickets:write"],
      groups: ["support"],
      actors: ["agent-7"],
    });
    expect(d.masked).toEqual(["ssn"]);
    expect(d.args).toEqual({ id: "T-11", ssn: "[masked]" });
    const url = new URL(d.simulatorUrl!, "http://x");
    expect(url.pathname).toBe("/simulator");
    expect(Object.fromEntries(url.searchParams)).toEqual({
      tenant: tenantA,
      server: serverA,
      user: "alice",
      groups: "support",
      client: "claude",
      scopes: "tickets:write",
      tool: "delete_ticket",
      args: JSON.stringify({ id: "T-11", ssn: "[masked]" }),
      time: new Date(now - MIN).toISOString(),
      fleet: fleetId,
      revision: "11",
    });
  });
});
