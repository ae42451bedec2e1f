/**
 * The pre-zeroed decision log segment (agent/wal.ts, the default) on a real
 * file system: the format (data up to the first NUL, zeros after), recovery
 * of torn tails and stray bytes, upgrade from (and back to) the appended
 * format, sealing to the exact lines, a failed write retried in place, a
 * group that crosses the zeros, and a writer killed with SIGKILL mid-stream.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { uuidv7 } from "uuidv7";
import { ACTIVE_FILE, dataOf, DecisionWal, NEXT_FILE, PREZERO_HEADROOM, PREZERO_MIN, type DecisionRecord } from "@/agent/wal";
import { normalizeDecisionRecord } from "@/lib/enforcement/decision-record";

const dirs: string[] = [];
const fresh = async () => {
  const d = await mkdtemp(path.join(tmpdir(), "mandate-wal-prezero-"));
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
const lineOf = (r: DecisionRecord) => JSON.stringify(normalizeDecisionRecord(r)) + "\n";
const SEG = 64 * 1024;
const CAP = SEG + PREZERO_HEADROOM;
const active = (dir: string) => path.join(dir, ACTIVE_FILE);

/** The active file: its data (up to the first NUL), its size, and whether every byte after the data is zero. */
async function activeState(dir: string) {
  const buf = await readFile(active(dir));
  const nul = buf.indexOf(0);
  const end = nul < 0 ? buf.length : nul;
  return { data: buf.subarray(0, end).toString("utf8"), size: buf.length, zerosAfter: buf.subarray(end).every((b) => b === 0) };
}

/** Every line of the data dir, in order: sealed segments (which must hold no NUL), then the active file's data. */
async function allLines(dir: string): Promise<string[]> {
  const sealed = (await readdir(dir)).filter((f) => /^decisions-\d+\.sealed$/.test(f)).sort();
  let text = "";
  for (const f of sealed) {
    const buf = await readFile(path.join(dir, f));
    expect(buf.includes(0), `${f} holds a NUL`).toBe(false);
    text += buf.toString("utf8");
  }
  text += dataOf(await readFile(active(dir), "utf8").catch(() => ""));
  return text.split("\n").filter(Boolean);
}
const idsOf = (lines: string[]) =>
  lines.flatMap((l) => {
    try {
      return [(JSON.parse(l) as DecisionRecord).id];
    } catch {
      return [];
    }
  });

describe("pre-zeroed decision log segment", () => {
  it("the active segment is capacity bytes of zeros, written in place: the size never changes, the data ends at the first NUL", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(wal.capacity).toBe(CAP);
    expect(await activeState(dir)).toEqual({ data: "", size: CAP, zerosAfter: true });
    const rs = [rec(), rec(), rec()];
    let expected = "";
    for (const r of rs) {
      await wal.append(r);
      expected += lineOf(r);
      expect(await activeState(dir)).toEqual({ data: expected, size: CAP, zerosAfter: true });
    }
    expect(wal.backlog()).toEqual({ lines: 3, bytes: Buffer.byteLength(expected) });
    await wal.close();
  });

  it("no decision line holds a NUL byte: JSON.stringify escapes U+0000 and UTF-8 gives no other character a zero byte", async () => {
    // Every UTF-16 code unit on its own (lone surrogates included), and a pair.
    for (let c = 0; c <= 0xffff; c++) expect(Buffer.from(JSON.stringify(String.fromCharCode(c)), "utf8").includes(0)).toBe(false);
    expect(Buffer.from(JSON.stringify("\u{1F600}"), "utf8").includes(0)).toBe(false);
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    const hostile = rec({ reason: "a\u0000b", tool: "\u0000", user: "\u0000\u0000", args: { "k\u0000": "v\u0000", n: ["\u0000"] } });
    const after = rec();
    await wal.append(hostile);
    await wal.append(after);
    const { data } = await activeState(dir);
    // Both lines are before the first NUL of the file: the record with "\u0000" did not end the data.
    const lines = data.split("\n").filter(Boolean);
    expect(lines).toHaveLength(2);
    expect((JSON.parse(lines[0]!) as DecisionRecord).id).toBe(hostile.id);
    expect((JSON.parse(lines[1]!) as DecisionRecord).id).toBe(after.id);
    await wal.close();
    const again = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await again.open();
    expect(again.backlog().lines).toBe(2);
    await again.close();
  });

  it("a torn last line inside a padded file is terminated at open; the next record follows it intact", async () => {
    const dir = await fresh();
    const whole = rec();
    const torn = lineOf(rec()).slice(0, 40);
    const buf = Buffer.alloc(CAP);
    buf.write(lineOf(whole) + torn);
    await writeFile(active(dir), buf);
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(wal.backlog().lines).toBe(2);
    const next = rec();
    await wal.append(next);
    const st = await activeState(dir);
    expect(st).toEqual({ data: lineOf(whole) + torn + "\n" + lineOf(next), size: CAP, zerosAfter: true });
    expect(wal.backlog()).toEqual({ lines: 3, bytes: Buffer.byteLength(st.data) });
    await wal.close();
  });

  it("bytes a torn write left after a NUL are zeroed before anything is written again", async () => {
    const dir = await fresh();
    const whole = rec();
    const buf = Buffer.alloc(CAP);
    const head = lineOf(whole);
    buf.write(head);
    // A later sector of a torn write landed, an earlier one did not: a gap of zeros, then stray bytes (a newline and JSON among them).
    const stray = '\n{"id":"stray","outcome":"allow"}\nmore';
    buf.write(stray, head.length + 10);
    buf.write("x", CAP - 1);
    await writeFile(active(dir), buf);
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(wal.backlog().lines).toBe(1);
    expect(await activeState(dir)).toEqual({ data: head, size: CAP, zerosAfter: true });
    // Lines that run over where the strays were: no stray byte joins the data.
    const a = rec({ reason: "" });
    const b = rec({ reason: "r".repeat(200) });
    await wal.append(a);
    await wal.append(b);
    expect(await activeState(dir)).toEqual({ data: head + lineOf(a) + lineOf(b), size: CAP, zerosAfter: true });
    const seg = (await wal.seal())!;
    expect(await readFile(seg.file, "utf8")).toBe(head + lineOf(a) + lineOf(b));
    await wal.close();
  });

  it("upgrade: an appended (unpadded) active file with a torn tail is continued and padded; turning the switch off cuts a padded file back", async () => {
    const dir = await fresh();
    const old = [rec(), rec()];
    const torn = lineOf(rec()).slice(0, 25);
    await writeFile(active(dir), old.map(lineOf).join("") + torn);
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(wal.backlog().lines).toBe(3);
    const next = rec();
    await wal.append(next);
    const text = old.map(lineOf).join("") + torn + "\n" + lineOf(next);
    expect(await activeState(dir)).toEqual({ data: text, size: CAP, zerosAfter: true });
    await wal.close();

    // Back to appending (MANDATE_WAL_PREZERO=0): the zeros are cut at open, the appends go after the data.
    const appending = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: false });
    await appending.open();
    expect(appending.backlog().lines).toBe(4);
    const later = rec();
    await appending.append(later);
    const buf = await readFile(active(dir));
    expect(buf.includes(0)).toBe(false);
    expect(buf.toString("utf8")).toBe(text + lineOf(later));
    const seg = (await appending.seal())!;
    expect(seg).toMatchObject({ lines: 5, bytes: Buffer.byteLength(text + lineOf(later)) });
    await appending.close();
  });

  it("upgrade: an appended active file whose lines are whole is padded to capacity at open and written in place after its data", async () => {
    const dir = await fresh();
    const old = [rec(), rec(), rec()];
    await writeFile(active(dir), old.map(lineOf).join(""));
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(wal.backlog().lines).toBe(3);
    expect(await activeState(dir)).toEqual({ data: old.map(lineOf).join(""), size: CAP, zerosAfter: true });
    const next = rec();
    await wal.append(next);
    expect(await activeState(dir)).toEqual({ data: [...old, next].map(lineOf).join(""), size: CAP, zerosAfter: true });
    await wal.close();
  });

  it("seal cuts the zeros: the sealed segment is exactly its lines; the next segment was prepared and is all zeros", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    const rs = Array.from({ length: 25 }, () => rec());
    await Promise.all(rs.map((r) => wal.append(r)));
    const expected = rs.map(lineOf).join("");
    const seg = (await wal.seal())!;
    const sealed = await readFile(seg.file);
    expect(sealed.toString("utf8")).toBe(expected);
    expect(seg).toMatchObject({ lines: 25, bytes: sealed.length });
    expect(wal.backlog()).toEqual({ lines: 25, bytes: sealed.length });
    expect(await activeState(dir)).toEqual({ data: "", size: CAP, zerosAfter: true });
    // The following segment is prepared in the background while this one fills, sized for twice the data of the
    // last sealed one (at least PREZERO_MIN), not for a whole segment: an agent sealing every second zero-fills ~2x its data.
    await expect.poll(async () => (await stat(path.join(dir, NEXT_FILE)).catch(() => null))?.size, { timeout: 10_000 }).toBe(PREZERO_MIN);
    expect(wal.hasActiveData).toBe(false);
    await wal.close();
    // A reopened WAL counts the sealed segment by its exact lines and deletes the leftover next file.
    const again = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await again.open();
    expect(again.backlog()).toEqual({ lines: 25, bytes: sealed.length });
    await again.close();
  });

  it("a sealed segment whose zeros a crash kept from being cut is cut at its first NUL when the log opens", async () => {
    const dir = await fresh();
    const rs = [rec(), rec()];
    const buf = Buffer.alloc(CAP);
    buf.write(rs.map(lineOf).join(""));
    buf.write("stray", CAP - 100);
    const file = path.join(dir, "decisions-000000000007.sealed");
    await writeFile(file, buf);
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    expect(await readFile(file, "utf8")).toBe(rs.map(lineOf).join(""));
    expect(wal.segments()).toEqual([{ seq: 7, file, lines: 2, bytes: Buffer.byteLength(rs.map(lineOf).join("")) }]);
    await wal.append(rec());
    expect((await wal.seal())!.seq).toBe(8);
    await wal.close();
  });

  it("a failed write fails its callers and is retried at the same offset: the partial bytes are overwritten, no torn line is left", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, prezero: true });
    await wal.open();
    const first = rec();
    await wal.append(first);
    // The active segment's handle (the background zero-filling of the next segment writes through another).
    const fh = (wal as unknown as { fh: object }).fh;
    const proto = Object.getPrototypeOf(fh) as { write: (...a: unknown[]) => Promise<{ bytesWritten: number }> };
    const real = proto.write;
    let failed = 0;
    proto.write = async function (this: unknown, ...a: unknown[]) {
      const [buf, off, len, pos] = a as [Buffer, number, number, number | null];
      if (!failed && this === fh && Buffer.isBuffer(buf) && len > 100) {
        // Half of the group lands, then the device fails.
        failed++;
        await real.call(this, buf, off, Math.floor(len / 2), pos);
        throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
      }
      return real.apply(this, a);
    };
    const lost = rec();
    const errors: unknown[] = [];
    try {
      await expect(wal.append(lost)).rejects.toThrow(/EIO/);
    } finally {
      proto.write = real;
    }
    expect(failed).toBe(1);
    // The retry (1 s later) writes the failed line again at its offset; a new append follows it.
    const next = rec();
    await wal.append(next).catch((e: unknown) => errors.push(e));
    expect(errors).toEqual([]);
    const st = await activeState(dir);
    expect(st).toEqual({ data: lineOf(first) + lineOf(lost) + lineOf(next), size: CAP, zerosAfter: true });
    expect(wal.backlog().lines).toBe(3);
    await wal.close();
  });

  it("a group that does not fit the zeros left seals first; one larger than a whole segment extends the file; every line intact", async () => {
    const dir = await fresh();
    const wal = new DecisionWal(dir, { maxSegmentBytes: SEG, maxSegmentLines: 1_000_000, prezero: true });
    await wal.open();
    const big = () => rec({ args: { pad: "p".repeat(900) } });
    const L = Buffer.byteLength(lineOf(big()));
    const ids: string[] = [];
    // Fill to just under the seal threshold, one line per write.
    const k = Math.floor((SEG - 1) / L) - 1;
    for (let i = 0; i < k; i++) {
      const r = big();
      ids.push(r.id);
      await wal.append(r);
    }
    await wal.flush();
    // One line starts a write; the burst behind it is one group of more than the zeros left (but less than a segment).
    const n = Math.floor((CAP - SEG) / L) + 20;
    expect(k * L + L + n * L).toBeGreaterThan(CAP);
    expect(n * L).toBeLessThan(CAP);
    const burst = Array.from({ length: 1 + n }, () => big());
    ids.push(...burst.map((r) => r.id));
    await Promise.all(burst.map((r) => wal.append(r)));
    // The writer's own seal runs after the callers were answered, and its zeros are cut after that: a seal of the
    // (empty) active segment resolves once both are done.
    expect(await wal.seal()).toBeNull();
    // The burst did not go after the k + 1 lines (past the zeros): that segment was sealed first, the burst went to a
    // fresh one and filled it past the threshold, so the writer sealed that one too.
    expect(wal.segments().map((s) => [s.lines, s.bytes])).toEqual([
      [k + 1, (k + 1) * L],
      [n, n * L],
    ]);
    // (The active one now is the segment prepared after the first seal: twice that one's data.)
    expect(wal.capacity).toBe(Math.ceil((2 * (k + 1) * L) / PREZERO_MIN) * PREZERO_MIN);
    let st = await activeState(dir);
    expect(st).toEqual({ data: "", size: wal.capacity, zerosAfter: true });
    expect(idsOf(await allLines(dir))).toEqual(ids);
    // A group larger than a whole segment is written past the zeros (the file grows), then sealed whole.
    const huge = Array.from({ length: Math.ceil(CAP / L) + 10 }, () => big());
    ids.push(...huge.map((r) => r.id));
    const lone = rec();
    ids.splice(ids.length - huge.length, 0, lone.id);
    await Promise.all([wal.append(lone), ...huge.map((r) => wal.append(r))]);
    expect(await wal.seal()).toBeNull();
    expect(wal.segments().map((s) => s.lines)).toEqual([k + 1, n, 1, huge.length]);
    st = await activeState(dir);
    expect(st).toEqual({ data: "", size: wal.capacity, zerosAfter: true });
    expect(idsOf(await allLines(dir))).toEqual(ids);
    expect((await allLines(dir)).length).toBe(ids.length);
    await wal.close();
  });

  it("every line acknowledged to a caller survives a SIGKILL of the writer mid-stream, kill after kill; the log goes on after each", async () => {
    const dir = await fresh();
    const script = path.join(dir, "..", `wal-writer-${process.pid}-${Date.now()}.mts`);
    dirs.push(script);
    // The writer: 16 callers append in a closed loop (small segments, so seals and the background next file run too)
    // and print each id once its append resolved (a synchronous write to the pipe).
    await writeFile(
      script,
      `import { writeSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { DecisionWal } from ${JSON.stringify(path.join(process.cwd(), "agent", "wal.ts"))};
const wal = new DecisionWal(process.argv[2]!, { maxSegmentBytes: 8 * 1024, prezero: true });
await wal.open();
writeSync(1, "ready\\n");
await Promise.all(Array.from({ length: 16 }, async (_, i) => {
  for (;;) {
    const id = randomUUID();
    await wal.append({ id, time: new Date().toISOString(), serverId: "srv_x", method: "tools/call", tool: "t" + i, outcome: "allow", reason: "r".repeat(i * 40), scopes: [], determining: [], latencyUs: 1 });
    writeSync(1, id + "\\n");
  }
}));
`,
    );
    const acked: string[] = [];
    for (let round = 0; round < 6; round++) {
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", script, dir], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
        let text = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => {
          const was = text.includes("ready\n");
          text += d.toString("utf8");
          // Killed at a different point of the stream each round.
          if (!was && text.includes("ready\n")) setTimeout(() => child.kill("SIGKILL"), 150 + round * 70);
        });
        child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
        child.on("exit", (code, signal) => (signal === "SIGKILL" ? resolve(text) : reject(new Error(`writer exited ${code}: ${err}`))));
      });
      // Only whole lines printed before the kill are acknowledgements.
      const printed = out.split("\n");
      printed.pop();
      acked.push(...printed.filter((l) => l !== "ready"));
      expect(printed.length).toBeGreaterThan(1);
    }
    // Recovery by a new WAL: every acknowledged id is on disk, every other line is a torn one (at most one per kill).
    const wal = new DecisionWal(dir, { maxSegmentBytes: 8 * 1024, prezero: true });
    await wal.open();
    const lines = await allLines(dir);
    const onDisk = new Set(idsOf(lines));
    const missing = acked.filter((id) => !onDisk.has(id));
    expect(missing).toEqual([]);
    expect(lines.length - idsOf(lines).length).toBeLessThanOrEqual(6);
    expect(wal.backlog().lines).toBe(lines.length);
    const after = rec();
    await wal.append(after);
    // (A recovered segment past the threshold is sealed by the writer after this write: let that finish before reading.)
    await wal.seal();
    expect(idsOf(await allLines(dir))).toContain(after.id);
    expect((await activeState(dir)).zerosAfter).toBe(true);
    await wal.close();
  }, 60_000);
});
