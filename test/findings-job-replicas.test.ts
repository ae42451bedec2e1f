/**
 * Issue 15: the owner's stored findings must be cheap on every control-plane
 * replica, not only on the one whose timer ran the hourly job. Two database
 * handles on one PostgreSQL database stand for two replicas; both start the
 * findings job (the scheduler lets one run it). Soon after a start the job
 * runs once (it does not wait a whole interval), and both replicas then hold
 * the stored results parsed (the one that ran it, and the other one reading
 * what it stored), so neither pays the first read on a view.
 */
import { randomBytes } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DbHandle } from "@/db/client";
import { findingResults, scheduledJobs, tenants } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import { startFindingsJob } from "@/lib/findings/digest";
import { GLOBAL_SCOPE, heldScopes } from "@/lib/findings/store";
import { createTestDb, makeTenant, makeUser, type TestDb } from "./db";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };

describe.skipIf(!process.env.DATABASE_URL)("the findings job across two replicas (PostgreSQL)", () => {
  let t: TestDb;
  let other: DbHandle;
  const stops: (() => void)[] = [];

  beforeAll(async () => {
    t = await createTestDb();
    const owner = await makeUser(t.db, { role: "owner" });
    await makeTenant(t.db, owner.actor, "Acme");
    await makeTenant(t.db, owner.actor, "Beta");
    other = await openDatabase({ url: t.url!, max: 2 });
  }, 120_000);
  afterAll(async () => {
    for (const stop of stops) stop();
    await other?.close();
    await t?.close();
  });

  it("runs once soon after the start, and both replicas hold every stored scope parsed", async () => {
    const opts = { keyring: [kek], egress: { loopback: true, cidrs: [] } };
    // An hour's interval, checked every 300 ms: the first check comes one tick after the start, not an hour later.
    stops.push(startFindingsJob(t.db, opts, 3_600_000, 300), startFindingsJob(other.db, opts, 3_600_000, 300));
    const scopes = [...(await t.db.select({ id: tenants.id }).from(tenants)).map((r) => r.id), GLOBAL_SCOPE].sort();
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !(heldScopes(t.db).length === scopes.length && heldScopes(other.db).length === scopes.length)) await new Promise((r) => setTimeout(r, 100));
    const [job] = await t.db.select().from(scheduledJobs).where(eq(scheduledJobs.name, "findings"));
    expect(job?.runs).toBe(1);
    const stored = await t.db.select({ scope: findingResults.scope }).from(findingResults);
    expect(stored.map((r) => r.scope).sort()).toEqual(scopes);
    expect(heldScopes(t.db)).toEqual(scopes);
    expect(heldScopes(other.db)).toEqual(scopes);
    // A further check within the interval does not run it again.
    await new Promise((r) => setTimeout(r, 900));
    const [again] = await t.db
      .select({ runs: sql<number>`runs` })
      .from(scheduledJobs)
      .where(eq(scheduledJobs.name, "findings"));
    expect(Number(again?.runs)).toBe(1);
  }, 60_000);
});
