/**
 * The segmented decision WAL on a real file system: sealing under concurrent
 * appends, rotation, leftovers and torn lines after a crash, backlog counts.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { uuidv7 } from "uuidv7";
import { toDecisionLine } from "@/agent/shipper";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";
import { decisionLine } from "@/lib/decisions/ingest";

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
    const wal = new DecisionWal(dir, { intervalMs: 1, maxBatch: 7 });
    await wal.open();
    const ids: string[] = [];
    const seals: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      const r = rec();
      ids.push(r.id);
      wal.append(r);
      if (i % 250 === 0) seals.push(wal.seal());
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(seals);
    await wal.flush();
    expect(await idsOnDisk(dir)).toEqual(ids);
    const segs = wal.segments();
    expect(segs.length).toBeGreaterThan(5);
    expect(segs.map((s) => s.seq)).toEqual([...segs.map((s) => s.seq)].sort((a, b) => a - b));
    expect(wal.backlog().lines).toBe(3000);
    await wal.close();
  });

  it("rotates the active segment at maxSegmentLines; a reopened WAL continues the sequence and counts the backlog", async () => {
    const dir = await fresh();
    // Rotation happens after a write: with writes of 10 lines, segments hold exactly 100.
    const wal = new DecisionWal(dir, { maxSegmentLines: 100, maxBatch: 10 });
    await wal.open();
    for (let i = 0; i < 450; i++) wal.append(rec());
    await wal.close();
    const names = (await readdir(dir)).sort();
    expect(names.filter((n) => n.endsWith(".sealed"))).toHaveLength(4);
    const again = new DecisionWal(dir, { maxSegmentLines: 100 });
    await again.open();
    expect(again.backlog().lines).toBe(450);
    expect(again.segments().map((s) => s.lines)).toEqual([100, 100, 100, 100]);
    const seg = (await again.seal())!;
    expect(seg.seq).toBe(5);
    expect(seg.lines).toBe(50);
    await again.acknowledge(again.segments()[0]!);
    expect(again.backlog().lines).toBe(350);
    const rejected = await again.reject(again.segments()[0]!);
    expect(path.basename(rejected)).toBe("decisions-000000000002.rejected");
    expect(again.backlog().lines).toBe(250);
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
    wal.append(next);
    await wal.flush();
    const lines = (await readFile(path.join(dir, "decisions.wal"), "utf8")).split("\n").filter(Boolean);
    expect(lines).toHaveLength(3);
    expect((JSON.parse(lines[2]!) as DecisionRecord).id).toBe(next.id);
    expect(wal.backlog().lines).toBe(3);
    await wal.close();
  });

  it("maps a WAL record to exactly the control plane's strict decision line", () => {
    const r = rec({ reason: "x".repeat(900), outcome: "deny" });
    const line = JSON.parse(toDecisionLine(JSON.stringify(r))!) as Record<string, unknown>;
    expect(Object.keys(line).sort()).toEqual(Object.keys(decisionLine.shape).sort());
    expect(line).not.toHaveProperty("time");
    expect(line).not.toHaveProperty("agentId");
    expect(line.args).toBeNull();
    expect((line.reason as string).length).toBe(500);
    expect(decisionLine.safeParse(line).success).toBe(true);
    expect(toDecisionLine('{"id": "torn')).toBeNull();
    expect(toDecisionLine("[1]")).toBeNull();
  });
});
