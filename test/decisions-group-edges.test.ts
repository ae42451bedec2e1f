import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { spansOf } from "@/lib/decisions/rollups";
import { createFleet } from "@/lib/fleets/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

/**
 * Group-by from the rollups over a window whose ends fall mid-day and mid-hour: the answer reads raw rows
 * (partial hours), hour rows (the partial days) and day rows, and must equal the scan of the raw rows for every key.
 */
const H = 3_600_000;
const D = 86_400_000;
let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
// The window: from 17:20 three days ago to 09:40 today (UTC), so every kind of span is read.
const today = Math.floor(Date.now() / D) * D - D; // yesterday 00:00 UTC: every row is in the past
const from = today - 3 * D + 17 * H + 20 * 60_000;
const to = today + 9 * H + 40 * 60_000;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  const tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  const serverA = (await makeServer(owner.ctx, tenantA))!.id;
  const serverB = (await makeServer(owner.ctx, tenantB))!.id;
  const fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverB] }))!.id;
  const outcomes = ["allow", "deny", "error"] as const;
  // Every 37 minutes from a day before the window to a day after it: rows outside, on the edges and inside.
  const specs = [];
  for (let i = 0, at = from - D; at < to + D; i++, at += 37 * 60_000) {
    const tenantId = i % 3 === 0 ? tenantB : tenantA;
    specs.push({
      atMs: at,
      tenantId,
      serverId: tenantId === tenantA ? serverA : serverB,
      fleetId,
      tool: i % 5 === 0 ? null : `tool${i % 4}`,
      userId: i % 11 === 0 ? null : `user${i % 7}`,
      clientId: i % 13 === 0 ? null : `client${i % 3}`,
      outcome: outcomes[Math.floor(i / 3) % 3]!,
    });
  }
  await insertDecisions(t.db, specs);
});
afterAll(() => t.close());

const counts = (gs: { key: string | null; count: number; denied: number }[]) => new Map(gs.map((g) => [g.key, [g.count, g.denied]]));

describe("group-by from the rollups, window ends mid-day and mid-hour", () => {
  it("reads raw rows, hour rows and day rows", () => {
    expect(spansOf(from, to, true).map((s) => s.source)).toEqual(["raw", "hour", "day", "hour", "raw"]);
  });

  for (const by of ["user", "client", "tool"] as const) {
    for (const outcome of [undefined, "deny", "allow"] as const) {
      it(`by ${by}${outcome ? `, outcome=${outcome}` : ""}: the same counts as the raw rows, for the owner and a tenant admin`, async () => {
        for (const m of [owner, adminA]) {
          const q = decisionGroupQuery.parse({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), by, outcome, limit: 50 });
          const r = await groupDecisions(m.ctx, q, to + H);
          const raw = await groupDecisions(m.ctx, q, to + H, { raw: true });
          expect(r.source).toBe("rollups");
          expect(raw.source).toBe("raw");
          expect(r.total).toBeGreaterThan(0);
          expect(counts(r.groups)).toEqual(counts(raw.groups));
          expect([r.total, r.others]).toEqual([raw.total, raw.others]);
        }
        const q = decisionGroupQuery.parse({ from: new Date(from).toISOString(), to: new Date(to).toISOString(), by, outcome, tenantId: tenantA, limit: 50 });
        expect(counts((await groupDecisions(owner.ctx, q, to + H)).groups)).toEqual(counts((await groupDecisions(owner.ctx, q, to + H, { raw: true })).groups));
      });
    }
  }
});
