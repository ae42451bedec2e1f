/**
 * The segmented decision WAL on a real file system: sealing under concurrent
 * appends, rotation, leftovers and torn lines after a crash, backlog counts.
 */
import { constants, readFileSync } from "node:fs";
import { type FileHandle, mkdtemp, open, readdir, readFile, readlink, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { uuidv7 } from "uuidv7";
import { toDecisionLine } from "@/agent/shipper";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";
import { decisionLine } from "@/lib/decisions/ingest";
import { decisionRecord } from "@/lib/enforcement/decision-record";

const dirs: string[] = [];
const fresh = async () => {
  const d = await mkdtemp(path.join(tmpdir(), "mandate-wal-"));
  dirs.push(d);
  return d;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const rec = (over: Partial<DecisionRecord> = {}): DecisionRecord => ({
  id: uuidv7(),
  time: new Date().toISOString(),
  agentId: "agt_x",
  bundleRevision: 2,
  tenantId: "ten_x",
  serverId: "srv_x",
  method: "tools/call",
  tool: "list_tickets",
  user: "alice",
  client: "claude",
  scopes: ["tickets:read"],
  outcome: "allow",
  determining: ["scope:srv_x:tickets:read"],
  reason: "ok",
  latencyUs: 7,
  ...over,
});

/** Every id in the data dir's segments and active file, in order. */
async function idsOnDisk(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((f) => /^decisions-\d+\.sealed$/.test(f)).sort();
  const text = (await Promise.all([...names, "decisions.wal"].map((f) => readFile(path.join(dir, f), "utf8").catch(() => "")))).join("");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as DecisionRecord).id);
}

describe("segmented decision WAL", () => {
  it("seals atomically while appends keep coming: every line in exactly one file, in order", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxBatch: 7 });
    await wal.open();
    const ids: string[] = [];
    const seals: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = rec();
      ids.push(r.id);
      void wal.append(r);
      if (i % 250 === 0) seals.push(wal.seal());
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(seals);
    await wal.flush();
    expect(await idsOnDisk(dir)).toEqual(ids);
    const segs = wal.segments();
    expect(segs.length).toBeGreaterThan(1);
    expect(segs.map((s) => s.seq)).toEqual([...segs.map((s) => s.seq)].sort((a, b) => a - b));
    expect(wal.backlog().lines).toBe(3000);
    await wal.close();
  });

  it("lone writes (the only request in flight) mixed with group writes and seals: every line in exactly one file, in order", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentLines: 500 });
    await wal.open();
    let alone = true;
    wal.solo = () => alone;
    const ids: string[] = [];
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = rec();
      ids.push(r.id);
      // Alone for a while, then a burst with others in flight, and seals on the way.
      alone = i % 300 < 150;
      // Now and then nothing is queued or being written: the next lone append is written on the event loop.
      if (i % 50 === 0) await wal.flush();
      pending.push(wal.append(r));
      // A seal right after a lone write, while lone appends keep coming (they must wait for it).
      if (i % 250 === 0) pending.push(wal.seal());
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(pending);
    await wal.flush();
    expect(await idsOnDisk(dir)).toEqual(ids);
    expect(wal.backlog().lines).toBe(3000);
    expect(wal.writes.lone).toBeGreaterThan(0);
    expect(wal.writes.group).toBeGreaterThan(0);
    expect(wal.segments().length).toBeGreaterThan(1);
    await wal.close();
  });

  it("a lone write is on disk when append() returns; with others in flight it waits for a group write", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir);
    await wal.open();
    const active = path.join(dir, "decisions.wal");
    let alone = true;
    wal.solo = () => alone;
    const a = rec();
    const done = wal.append(a);
    // Nothing awaited yet: the line was written (O_DSYNC) before append() returned.
    expect(readFileSync(active, "utf8")).toContain(a.id);
    await done;
    expect(wal.writes).toEqual({ lone: 1, group: 0 });
    alone = false;
    const b = rec();
    const later = wal.append(b);
    expect(readFileSync(active, "utf8")).not.toContain(b.id);
    await later;
    expect(readFileSync(active, "utf8")).toContain(b.id);
    expect(wal.writes).toEqual({ lone: 1, group: 1 });
    // MANDATE_WAL_SOLO=0 turns lone writes off.
    alone = true;
    process.env.MANDATE_WAL_SOLO = "0";
    try {
      const c = rec();
      const p = wal.append(c);
      expect(readFileSync(active, "utf8")).not.toContain(c.id);
      await p;
    } finally {
      delete process.env.MANDATE_WAL_SOLO;
    }
    await wal.close();
  });

  it("a lone write that fails fails its caller (no answer), and its line is written again on a reopened file", async () => {
    const dir = await fresh();
    const errors: unknown[] = [];
    const wal = new DecisionWal(dir, { onError: (e) => errors.push(e) });
    await wal.open();
    wal.solo = () => true;
    // The active segment's handle swapped for one on /dev/full: every write(2) fails with ENOSPC, as on a full disk.
    const internals = wal as unknown as { fh: FileHandle };
    await internals.fh.close();
    internals.fh = await open("/dev/full", constants.O_WRONLY);
    const r = rec();
    await expect(wal.append(r)).rejects.toThrow(/ENOSPC/);
    expect(errors.length).toBe(1);
    // Meanwhile another decision waits for the retry (never answered before it is durable).
    const next = rec();
    const waiting = wal.append(next);
    await waiting;
    // Retried after the pause on a reopened active file: both lines, in order, each once.
    expect(await idsOnDisk(dir)).toEqual([r.id, next.id]);
    expect(wal.backlog().lines).toBe(2);
    await wal.close();
  });

  it("rotates the active segment at maxSegmentLines; a reopened WAL continues the sequence and counts the backlog", async () => {
    const dir = await fresh();
    // Rotation happens after a write (of at most 10 lines here): a segment holds 100 to 109 lines.
    const wal = new DecisionWal(dir, { maxSegmentLines: 100, maxBatch: 10 });
    await wal.open();
    for (let i = 0; i < 450; i++) void wal.append(rec());
    await wal.close();
    const names = (await readdir(dir)).sort();
    expect(names.filter((n) => n.endsWith(".sealed"))).toHaveLength(4);
    const again = new DecisionWal(dir, { maxSegmentLines: 100 });
    await again.open();
    expect(again.backlog().lines).toBe(450);
    const sizes = again.segments().map((s) => s.lines);
    expect(sizes.every((n) => n >= 100 && n < 110)).toBe(true);
    const seg = (await again.seal())!;
    expect(seg.seq).toBe(5);
    expect(seg.lines).toBe(450 - sizes.reduce((a, b) => a + b, 0));
    await again.acknowledge(again.segments()[0]!);
    expect(again.backlog().lines).toBe(450 - sizes[0]!);
    const rejected = await again.reject(again.segments()[0]!);
    expect(path.basename(rejected)).toBe("decisions-000000000002.rejected");
    expect(again.backlog().lines).toBe(450 - sizes[0]! - sizes[1]!);
    expect(await again.seal()).toBeNull(); // nothing active
    await again.close();
  });

  it("a line torn by a crash is terminated at open, so the next record stays intact", async () => {
    const dir = await fresh();
    const whole = rec();
    await writeFile(path.join(dir, "decisions.wal"), `${JSON.stringify(whole)}\n${JSON.stringify(rec()).slice(0, 33)}`);
    const wal = new DecisionWal(dir);
    await wal.open();
    const next = rec();
    await wal.append(next);
    const lines = (await readFile(path.join(dir, "decisions.wal"), "utf8")).split("\n").filter(Boolean);
    expect(lines).toHaveLength(3);
    expect((JSON.parse(lines[2]!) as DecisionRecord).id).toBe(next.id);
    expect(wal.backlog().lines).toBe(3);
    await wal.close();
  });

  it("maps a WAL record to the control plane's strict decision line; a line that is not a record goes as it is", () => {
    const r = rec({ reason: "x".repeat(900), outcome: "deny" });
    const line = JSON.parse(toDecisionLine(JSON.stringify(r))) as Record<string, unknown>;
    for (const k of Object.keys(line)) expect(Object.keys(decisionLine.shape)).toContain(k);
    expect(line).not.toHaveProperty("time");
    expect(line).not.toHaveProperty("agentId");
    expect((line.reason as string).length).toBe(500);
    expect(decisionLine.safeParse(line).success).toBe(true);
    expect(toDecisionLine('{"id": "torn')).toBe('{"id": "torn');
    expect(toDecisionLine("[1]")).toBe("[1]");
  });

  it("append resolves only once the record is fsynced: read back at once, it is on disk (issue 10.10)", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir);
    await wal.open();
    for (let i = 0; i < 20; i++) {
      const r = rec();
      await wal.append(r);
      // No flush, no timer: the resolved append is the durability point.
      expect(await idsOnDisk(dir)).toContain(r.id);
    }
    await wal.close();
    await expect(wal.append(rec())).rejects.toThrow(/closed/);
  });

  it("group commit: concurrent appends share durable writes, and each resolves only after the durable write that covers it", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir);
    await wal.open();
    const active = path.join(dir, "decisions.wal");
    // The active segment is opened O_DSYNC (Linux: 0o10000 in the fd's flags): each write(2) returns once durable.
    const dsync = process.platform === "linux";
    if (dsync) {
      let flags: number | null = null;
      for (const fd of await readdir("/proc/self/fd")) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
        if (target === (await realpath(active))) flags = parseInt(/^flags:\s+(\d+)/m.exec(await readFile(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!, 8);
      }
      expect(flags).not.toBeNull();
      expect(flags! & constants.O_DSYNC).toBe(constants.O_DSYNC);
      expect(flags! & constants.O_APPEND).toBe(constants.O_APPEND);
    }
    const fh = await open(path.join(dir, "probe"), "w");
    const proto = Object.getPrototypeOf(fh) as Record<"sync" | "datasync" | "write", (...a: unknown[]) => Promise<unknown>>;
    await fh.close();
    let syncs = 0;
    let synced = 0; // lines of the active file covered by a completed durable write (O_DSYNC write, or fsync/fdatasync)
    const real = { sync: proto.sync, datasync: proto.datasync, write: proto.write };
    const durablePoint = (name: "sync" | "datasync" | "write") =>
      async function (this: unknown, ...a: unknown[]) {
        const out = await real[name].apply(this, a);
        if (name !== "write" || dsync) {
          syncs++;
          synced = Math.max(synced, (await readFile(active, "utf8")).split("\n").length - 1);
        }
        return out;
      };
    proto.sync = durablePoint("sync");
    proto.datasync = durablePoint("datasync");
    proto.write = durablePoint("write");
    try {
      const n = 500;
      const order: number[] = [];
      await Promise.all(Array.from({ length: n }, (_, i) => wal.append(rec()).then(() => order.push(synced >= i + 1 ? 1 : 0))));
      // Every append resolved after a durable write that covered it, and 500 appends took far fewer.
      expect(order.every((x) => x === 1)).toBe(true);
      expect(syncs).toBeGreaterThan(0);
      expect(syncs).toBeLessThanOrEqual(5);
      expect((await idsOnDisk(dir)).length).toBe(n);
    } finally {
      Object.assign(proto, real);
    }
    await wal.close();
  });

  it("normalizes what it writes: a hostile method, tool and arguments still give one line ingest accepts", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir);
    await wal.open();
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const hostile = {
      ...rec(),
      method: { toString: "x" },
      tool: "t".repeat(10_000) + "\u0000",
      user: "\ud800",
      scopes: Array.from({ length: 500 }, () => "s"),
      args: { deep },
    } as unknown as DecisionRecord;
    await wal.append(hostile);
    await wal.close();
    const [text] = (await readFile(path.join(dir, "decisions.wal"), "utf8")).split("\n");
    // The line on disk is already a valid record (the shipper normalizes again, for lines of older agents).
    expect(decisionRecord.safeParse(JSON.parse(text!)).success).toBe(true);
    const line = JSON.parse(toDecisionLine(text!)) as Record<string, unknown>;
    expect(decisionLine.safeParse(line).success).toBe(true);
    expect(line).toMatchObject({ method: "(invalid)", user: "\uFFFD", args: null, context: { masked: ["args-truncated"] } });
    expect((line.tool as string).length).toBe(128);
    expect((line.tool as string).endsWith("…")).toBe(true);
    expect(line.scopes).toHaveLength(100);
  });
});
