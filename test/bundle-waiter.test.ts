import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { eq } from "drizzle-orm";
import { openDatabase, type DbHandle } from "@/db/client";
import { bundles, fleets } from "@/db/schema";
import { parseBundlePayload, stopBundleListener, waiterCount, waitForRevision } from "@/lib/agents/bundle-waiter";
import { createFleet } from "@/lib/fleets/service";
import { createTestDb, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { notifyOnly, publishBundle } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  if (t) await stopBundleListener(t.handle);
  await t?.close();
});

const newFleet = async () => (await createFleet(owner.ctx, { name: uniq("Poll ") }))!.id;

/** Starts a wait and reports when (performance.now()) and how it ended. */
function timedWait(handle: DbHandle, fleetId: string, after: number | null, timeoutMs: number, signal?: AbortSignal) {
  const started = performance.now();
  return waitForRevision(handle, fleetId, after, timeoutMs, signal).then((woke) => ({ woke, at: performance.now(), elapsed: performance.now() - started }));
}

/** Lets the waiter subscribe (LISTEN + re-check) before the test publishes. */
async function untilWaiting(handle: DbHandle, fleetId: string, n = 1) {
  for (let i = 0; i < 200 && waiterCount(handle, fleetId) < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(waiterCount(handle, fleetId)).toBeGreaterThanOrEqual(n);
}

describe("bundle waiter (in-process, both drivers)", () => {
  it("parses payloads", () => {
    expect(parseBundlePayload("flt_abc:12")).toEqual({ fleetId: "flt_abc", revision: 12 });
    for (const bad of ["", "flt_abc", ":3", "flt_abc:", "flt_abc:x", "flt_abc:-1", "flt_abc:1.5"]) expect(parseBundlePayload(bad), bad).toBeNull();
  });

  it("wakes a waiter within a second of a publish on the same handle", async () => {
    const fleetId = await newFleet();
    const wait = timedWait(t.handle, fleetId, null, 10_000);
    await untilWaiting(t.handle, fleetId);
    const published = performance.now();
    await publishBundle(t.db, fleetId, 1);
    const r = await wait;
    expect(r.woke).toBe(true);
    const latency = r.at - published;
    console.log(`[long poll] ${t.driver} in-process wake: ${latency.toFixed(1)} ms after publish start`);
    expect(latency).toBeLessThan(1000);
    expect(waiterCount(t.handle, fleetId)).toBe(0);
  });

  it("times out with false, and aborts with false", async () => {
    const fleetId = await newFleet();
    const r = await timedWait(t.handle, fleetId, null, 300);
    expect(r.woke).toBe(false);
    expect(r.elapsed).toBeGreaterThanOrEqual(290);
    expect(r.elapsed).toBeLessThan(2000);
    expect(waiterCount(t.handle, fleetId)).toBe(0);

    const ac = new AbortController();
    const aborted = timedWait(t.handle, fleetId, null, 10_000, ac.signal);
    await untilWaiting(t.handle, fleetId);
    ac.abort();
    const a = await aborted;
    expect(a.woke).toBe(false);
    expect(a.elapsed).toBeLessThan(1000);
    expect(waiterCount(t.handle, fleetId)).toBe(0);
    expect(await waitForRevision(t.handle, fleetId, null, 10_000, ac.signal)).toBe(false);
  });

  it("ignores other fleets, older revisions and garbage", async () => {
    const fleetId = await newFleet();
    const other = await newFleet();
    await publishBundle(t.db, fleetId, 1);
    await publishBundle(t.db, fleetId, 2);
    const wait = timedWait(t.handle, fleetId, 2, 700);
    await untilWaiting(t.handle, fleetId);
    await publishBundle(t.db, other, 1);
    await notifyOnly(t.db, `${fleetId}:2`);
    await notifyOnly(t.db, `${fleetId}:1`);
    await notifyOnly(t.db, `${fleetId}`);
    await notifyOnly(t.db, "garbage");
    expect((await wait).woke).toBe(false);
  });

  it("re-checks the database after subscribing: a publish that raced the subscription is not missed", async () => {
    const fleetId = await newFleet();
    await publishBundle(t.db, fleetId, 1);
    // The caller read revision 1; then revision 2 commits before it subscribes (no notification will come).
    await publishBundle(t.db, fleetId, 2, { notify: false });
    const r = await timedWait(t.handle, fleetId, 1, 5000);
    expect(r.woke).toBe(true);
    expect(r.elapsed).toBeLessThan(1000);
    // Same for "no bundle yet": anything active counts.
    expect((await timedWait(t.handle, fleetId, null, 5000)).woke).toBe(true);
    // And nothing newer: the re-check does not wake it.
    expect((await timedWait(t.handle, fleetId, 2, 300)).woke).toBe(false);
  });

  it("one publish wakes every waiter of the fleet", async () => {
    const fleetId = await newFleet();
    const waits = Array.from({ length: 50 }, () => timedWait(t.handle, fleetId, null, 10_000));
    await untilWaiting(t.handle, fleetId, 50);
    await publishBundle(t.db, fleetId, 1);
    const results = await Promise.all(waits);
    expect(results.every((r) => r.woke)).toBe(true);
    expect(waiterCount(t.handle, fleetId)).toBe(0);
  });
});

const url = process.env.DATABASE_URL;

describe.skipIf(!url)("bundle waiter across processes (PostgreSQL)", () => {
  let b: DbHandle;
  beforeAll(async () => {
    // A second, independent connection pool on the same test database: another "process".
    b = await openDatabase({ url: t.url!, max: 2 });
  });
  afterAll(async () => {
    await b?.close();
  });

  it("a publish through another connection pool wakes the waiter within a second", async () => {
    const fleetId = await newFleet();
    const wait = timedWait(t.handle, fleetId, null, 10_000);
    await untilWaiting(t.handle, fleetId);
    const published = performance.now();
    await publishBundle(b.db, fleetId, 1);
    const committed = performance.now();
    const r = await wait;
    expect(r.woke).toBe(true);
    const latency = r.at - published;
    console.log(`[long poll] two pools: woke ${latency.toFixed(1)} ms after publish start (${(r.at - committed).toFixed(1)} ms after commit returned)`);
    expect(latency).toBeLessThan(1000);

    // And the next one, waiting after revision 1.
    const wait2 = timedWait(t.handle, fleetId, 1, 10_000);
    await untilWaiting(t.handle, fleetId);
    const p2 = performance.now();
    await publishBundle(b.db, fleetId, 2);
    const r2 = await wait2;
    expect(r2.woke).toBe(true);
    expect(r2.at - p2).toBeLessThan(1000);
  });

  it("a publish from a child Node process wakes the waiter within a second of its commit", async () => {
    const fleetId = await newFleet();
    const wait = timedWait(t.handle, fleetId, null, 30_000);
    await untilWaiting(t.handle, fleetId);
    const fixture = path.join(process.cwd(), "test", "fixtures", "notify-publish.ts");
    const child = spawn(process.execPath, ["--import", "tsx", fixture, t.url!, fleetId, "1"], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));

    const r = await wait;
    const wokeAtEpoch = Date.now() - (performance.now() - r.at);
    const code = await exited;
    expect(code, err).toBe(0);
    expect(r.woke).toBe(true);
    const { beganAt, committedAt, pid } = JSON.parse(out.trim().split("\n").pop()!) as { beganAt: number; committedAt: number; pid: number };
    expect(pid).not.toBe(process.pid);
    // committedAt is taken after COMMIT returned in the child, so the notification may even arrive first;
    // beganAt (before BEGIN) bounds the latency from above.
    const latency = wokeAtEpoch - beganAt;
    console.log(`[long poll] child process (pid ${pid}): woke ${latency.toFixed(1)} ms after the child began its transaction (${(wokeAtEpoch - committedAt).toFixed(1)} ms after its commit returned)`);
    expect(latency).toBeLessThan(1000);
    expect(wokeAtEpoch - committedAt).toBeLessThan(1000);

    const [f] = await t.db.select().from(fleets).where(eq(fleets.id, fleetId));
    expect(f!.activeRevision).toBe(1);
    const [bundle] = await t.db.select().from(bundles).where(eq(bundles.fleetId, fleetId));
    expect(bundle).toMatchObject({ revision: 1, createdBy: "child-process" });
  });
});
