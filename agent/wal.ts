import { constants, createReadStream, writeSync } from "node:fs";
import { appendFile, mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";

import { normalizeDecisionRecord, type DecisionRecord } from "@/lib/enforcement/decision-record";

// The record, its bounds and its normalization are one contract with ingest (lib/enforcement/decision-record.ts).
export type { DecisionRecord };

/** The active segment: every decision is appended here first. */
export const ACTIVE_FILE = "decisions.wal";
const SEGMENT = /^decisions-(\d{12})\.(sealed|rejected)$/;
/** Decisions waiting for the disk; past this, append refuses (the caller must not answer). */
const MAX_QUEUED_LINES = 100_000;
/** After a failed write, the next attempt waits this long (appends meanwhile wait too, or are refused past the bound). */
const RETRY_MS = 1000;
/**
 * How the active segment is opened: appending, and with O_DSYNC where the
 * platform has it, so one write(2) returns only once the data and the file
 * size are on stable storage (what write + fdatasync gives, in one system
 * call and one trip to libuv's thread pool instead of two). Elsewhere each
 * group write is followed by fdatasync.
 */
const DSYNC: number = constants.O_DSYNC ?? 0;
const ACTIVE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | DSYNC;
/**
 * A durable write that took longer than this (a device far slower than its usual 0.1–1 ms, or stalled)
 * turns lone writes (DecisionWal.solo) off for SOLO_OFF_MS: while the device is that slow, every write
 * goes through the thread pool, so the event loop is held by at most one such write in that time. (2 ms
 * was tried first: the occasional slow write when PostgreSQL shares the disk kept lone writes off most
 * of the time.)
 */
export const SOLO_MAX_MS = 20;
export const SOLO_OFF_MS = 10_000;
const segmentName = (seq: number, kind: "sealed" | "rejected") => `decisions-${String(seq).padStart(12, "0")}.${kind}`;

/** A sealed segment: closed, renamed, never written again; deleted once the control plane acknowledged all of it. */
export interface Segment {
  seq: number;
  file: string;
  lines: number;
  bytes: number;
}

export interface WalOptions {
  /** At most this many records per durable write (group commit). Default: every record waiting. 1 = one durable write per record (for comparison). */
  maxBatch?: number;
  /** The writer seals the active segment itself once it holds this many lines (default 5,000) … */
  maxSegmentLines?: number;
  /** … or this many bytes (default 4 MiB), so a long outage leaves many bounded segments, not one huge file. */
  maxSegmentBytes?: number;
  onError?: (err: unknown) => void;
  /**
   * "dsync" (default): O_DSYNC writes (fdatasync where the platform lacks O_DSYNC). "fsync": a plain
   * write then fsync, the way before (kept for bench/wal.ts to compare). Both are durable before append resolves.
   */
  sync?: "dsync" | "fsync";
}

/**
 * Segmented, append-only NDJSON log of decisions in the data dir.
 *
 * - `decisions.wal` is the active segment. `append()` normalizes the record
 *   (every bound of the decision record, so ingest never refuses it) and
 *   resolves only once it is on stable storage: no decision record, no
 *   answer. The active segment is opened O_APPEND | O_DSYNC (Linux, macOS):
 *   a group's write(2) returns once its bytes and the new file size are
 *   durable, as write + fdatasync would (elsewhere: write, then fdatasync);
 *   the directory entry of every segment is fsynced when the file is created
 *   or renamed. That holds across a power cut as far as the device honours
 *   cache flushes (docs/operations.md, "Decision log durability"). Group
 *   commit: when no write is running, an append is written at once; the
 *   appends that arrive while one durable write runs are written together by
 *   the next one, so a burst costs a few device flushes, not one each.
 *   `flush()` resolves once every line queued before it is on disk.
 * - `seal()` (called by the shipper when the active segment holds data, and by
 *   the writer itself past `maxSegmentLines`/`maxSegmentBytes`) runs in the
 *   write chain: pending lines are written and fsynced, the file is closed and
 *   renamed to `decisions-<seq>.sealed` (atomic), the directory is fsynced and
 *   a new active file is opened. Appends made meanwhile wait in memory and go
 *   to the new file, so no line is ever in two segments or in none.
 * - Sealed segments are handed out oldest first (`segments()`); the shipper
 *   deletes one (`acknowledge`) only after the control plane acknowledged every
 *   line of it, or moves it to `decisions-<seq>.rejected` (`reject`).
 * - At open: leftover sealed segments are picked up, the sequence continues
 *   after the highest one, and an active file whose last line was torn by a
 *   crash gets a newline so the torn line cannot swallow the next record.
 */
export class DecisionWal {
  readonly dir: string;
  readonly file: string;
  private fh: FileHandle | null = null;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private activeLines = 0;
  private activeBytes = 0;
  private readonly sealed = new Map<number, Segment>();
  private nextSeq = 1;
  private retryTimer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private scanned = false;
  /** Seals queued in the write chain and not yet done (the active file may be closed meanwhile). */
  private sealing = 0;
  /** Lone writes are off until then (a durable write took over SOLO_MAX_MS). */
  private soloOffUntil = 0;
  /**
   * Whether the record being appended belongs to the only request in flight (set by the agent's server).
   * Then, when nothing is queued, written or sealed, the line is written by one blocking O_DSYNC
   * write(2) on the event loop, and append() resolves at once: the call goes on in the same turn, without
   * the thread pool's two wake-ups (~0.1 ms at c=1 on this machine's disk; docs/operations.md). Nothing
   * else waits meanwhile, and the write is as durable as a group write. A failed one fails its caller
   * and is retried like a failed group write. `MANDATE_WAL_SOLO=0`: never (benches compare).
   */
  solo: (() => boolean) | null = null;
  /** Durable writes so far: lone (one line on the event loop) and group (through the thread pool). */
  readonly writes = { lone: 0, group: 0 };
  /** How records are made durable (WalOptions.sync; MANDATE_WAL_SYNC=fsync for the way before, as benches compare). */
  private readonly sync: "dsync" | "fsync";

  constructor(
    dataDir: string,
    private readonly opts: WalOptions = {},
  ) {
    this.dir = dataDir;
    this.file = path.join(dataDir, ACTIVE_FILE);
    this.sync = opts.sync ?? (process.env.MANDATE_WAL_SYNC === "fsync" ? "fsync" : "dsync");
  }

  /** Scans the data dir (leftover segments, torn tail) and opens the active segment. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (!this.scanned) {
      for (const name of (await readdir(this.dir)).sort()) {
        const m = SEGMENT.exec(name);
        if (!m) continue;
        const seq = Number(m[1]);
        this.nextSeq = Math.max(this.nextSeq, seq + 1);
        if (m[2] === "sealed") {
          const file = path.join(this.dir, name);
          this.sealed.set(seq, { seq, file, ...(await countLines(file)) });
        }
      }
      const active = await countLines(this.file).catch(() => ({ lines: 0, bytes: 0 }));
      this.activeLines = active.lines;
      this.activeBytes = active.bytes;
      this.scanned = true;
    }
    await this.openActive();
    // The active file may have just been created: its directory entry is made durable too.
    await syncDir(this.dir);
  }

  private async openActive(): Promise<void> {
    this.fh = await open(this.file, this.sync === "fsync" ? ACTIVE_FLAGS & ~DSYNC : ACTIVE_FLAGS, 0o600);
    const { size } = await this.fh.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await this.fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) {
        // A crash tore the last line: terminate it, so it stays one (unparseable) line of its own.
        await writeDurably(this.fh, Buffer.from("\n"), this.sync);
        this.activeBytes++;
      }
    }
  }

  /**
   * Writes one decision (normalized to the record's bounds); resolves once it
   * is durable, rejects if it could not be (the disk failed, too many waiting,
   * or the log is closed). A caller answers or forwards only after it resolves.
   * After a failed write the lines stay queued and are retried.
   */
  append(rec: DecisionRecord | Record<string, unknown>): Promise<void> {
    if (this.closed) return Promise.reject(new Error("decision WAL: closed"));
    if (this.queue.length >= MAX_QUEUED_LINES) return Promise.reject(new Error(`decision WAL: ${MAX_QUEUED_LINES} decisions already wait for the disk`));
    const line = JSON.stringify(normalizeDecisionRecord(rec)) + "\n";
    if (this.canWriteAlone()) return this.writeAlone(line);
    return new Promise<void>((resolve, reject) => {
      const bytes = Buffer.byteLength(line);
      this.queue.push({ line, bytes, done: resolve, fail: reject });
      this.queuedBytes += bytes;
      this.kick();
    });
  }

  private canWriteAlone(): boolean {
    return (
      this.fh !== null &&
      !this.inFlight &&
      this.sealing === 0 &&
      !this.retryTimer &&
      !this.queue.length &&
      this.sync === "dsync" &&
      DSYNC !== 0 &&
      this.solo !== null &&
      process.env.MANDATE_WAL_SOLO !== "0" &&
      performance.now() >= this.soloOffUntil &&
      this.solo()
    );
  }

  /** One line written by a blocking O_DSYNC write(2) on the event loop (see `solo`). */
  private writeAlone(line: string): Promise<void> {
    const buf = Buffer.from(line, "utf8");
    const started = performance.now();
    try {
      for (let off = 0; off < buf.length;) {
        const n = writeSync(this.fh!.fd, buf, off, buf.length - off);
        if (n <= 0) throw new Error("decision WAL: the write made no progress");
        off += n;
      }
    } catch (err) {
      // As a failed group write: the caller is told (it must not answer), the line is retried on a reopened file.
      this.soloOffUntil = performance.now() + SOLO_OFF_MS;
      this.queuedBytes += buf.length;
      return new Promise<void>((_resolve, reject) => this.exclusive(() => this.failed([{ line, bytes: buf.length, done: noop, fail: reject }], err)));
    }
    this.slow(started);
    this.writes.lone++;
    this.activeLines++;
    this.activeBytes += buf.length;
    if (this.segmentFull()) this.exclusive(() => this.sealNow().then(noop, (e: unknown) => this.opts.onError?.(e)));
    return Promise.resolve();
  }

  /** A durable write that took over SOLO_MAX_MS turns lone writes off for a while. */
  private slow(started: number): void {
    const now = performance.now();
    if (now - started > SOLO_MAX_MS) this.soloOffUntil = now + SOLO_OFF_MS;
  }

  /** Starts the next group write unless one is running (then it starts when that one ends). */
  private kick(): void {
    if (this.inFlight || this.retryTimer || !this.queue.length) return;
    const group = this.queue.splice(0, this.opts.maxBatch ?? this.queue.length);
    this.exclusive(() => this.writeGroup(group));
  }

  /** Runs `work` next in the write chain as the one write in flight (appends meanwhile are queued), then starts the next group. */
  private exclusive(work: () => Promise<void>): void {
    this.inFlight = true;
    this.writing = this.writing.then(work).then(() => {
      this.inFlight = false;
      this.kick();
    });
  }

  /** The active segment holds maxSegmentLines or maxSegmentBytes: the writer seals it. */
  private segmentFull(): boolean {
    return this.activeLines >= (this.opts.maxSegmentLines ?? 5000) || this.activeBytes >= (this.opts.maxSegmentBytes ?? 4 * 1024 * 1024);
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    const bytes = group.reduce((n, p) => n + p.bytes, 0);
    try {
      if (!this.fh) await this.open();
      let text = "";
      for (const p of group) text += p.line;
      const started = performance.now();
      await writeDurably(this.fh!, Buffer.from(text, "utf8"), this.sync);
      this.slow(started);
      this.writes.group++;
    } catch (err) {
      return this.failed(group, err);
    }
    this.queuedBytes -= bytes;
    this.activeLines += group.length;
    this.activeBytes += bytes;
    for (const p of group) p.done();
    if (this.segmentFull()) await this.sealNow().catch((err: unknown) => this.opts.onError?.(err));
  }

  /** A group whose write failed. */
  private async failed(group: Pending[], err: unknown): Promise<void> {
    this.opts.onError?.(err);
    // The waiting callers learn it now (they must not answer); the lines stay queued and are retried on a
    // reopened file, whose torn last line openActive() terminates (a partial append may have landed: the ids make a repeat harmless).
    for (const p of group) p.fail(err);
    await this.fh?.close().catch(() => {});
    this.fh = null;
    this.queue = [...group.map((p) => ({ ...p, done: noop, fail: noop })), ...this.queue];
    if (!this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.kick();
      }, RETRY_MS);
    }
  }

  /** Resolves once every line queued before it was written (or its write failed). */
  flush(): Promise<void> {
    const last = this.queue.at(-1);
    if (!last) return this.writing;
    this.kick();
    return new Promise<void>((resolve) => {
      const { done, fail } = last;
      last.done = () => {
        done();
        resolve();
      };
      last.fail = (err) => {
        fail(err);
        resolve();
      };
    });
  }

  /** Writes what is queued, then seals the active segment if it holds anything. Resolves with the new segment, or null. */
  seal(): Promise<Segment | null> {
    return this.flush().then(() => {
      // In the write chain: no group write runs while the file is closed and renamed.
      this.sealing++;
      const sealed = this.writing.then(() => this.sealNow()).finally(() => this.sealing--);
      this.writing = sealed.then(noop, noop);
      return sealed;
    });
  }

  private async sealNow(): Promise<Segment | null> {
    if (this.closed || this.activeBytes === 0) return null;
    const seq = this.nextSeq++;
    const file = path.join(this.dir, segmentName(seq, "sealed"));
    await this.fh?.close();
    this.fh = null;
    await rename(this.file, file);
    const seg: Segment = { seq, file, lines: this.activeLines, bytes: this.activeBytes };
    this.sealed.set(seq, seg);
    this.activeLines = 0;
    this.activeBytes = 0;
    await this.openActive();
    await syncDir(this.dir);
    return seg;
  }

  /** Sealed segments not yet acknowledged, oldest first. */
  segments(): Segment[] {
    return [...this.sealed.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Every line of the segment was acknowledged: delete it. */
  async acknowledge(seg: Segment): Promise<void> {
    await unlink(seg.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
    this.sealed.delete(seg.seq);
  }

  /** The control plane refused the segment: move it aside (`decisions-<seq>.rejected`) for an operator. Returns the new path. */
  async reject(seg: Segment): Promise<string> {
    const target = path.join(this.dir, segmentName(seg.seq, "rejected"));
    const exists = await stat(target).then(
      () => true,
      () => false,
    );
    if (exists) {
      // Lines of this segment were already set aside (unparseable ones): keep both.
      await appendFile(target, await readFile(seg.file), { mode: 0o600 });
      await unlink(seg.file);
    } else {
      await rename(seg.file, target);
    }
    await syncDir(this.dir);
    this.sealed.delete(seg.seq);
    return target;
  }

  /** Sets lines of a segment aside (appended to `decisions-<seq>.rejected`) before the segment is acknowledged. */
  async rejectLines(seg: Segment, lines: string[]): Promise<string> {
    const target = path.join(this.dir, segmentName(seg.seq, "rejected"));
    const fh = await open(target, "a", 0o600);
    try {
      await fh.appendFile(lines.map((l) => `${l}\n`).join(""));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return target;
  }

  /** Lines and bytes not yet acknowledged by the control plane: queued, in the active segment and in sealed ones. */
  backlog(): { lines: number; bytes: number } {
    let lines = this.queue.length + this.activeLines;
    let bytes = this.queuedBytes + this.activeBytes;
    for (const s of this.sealed.values()) {
      lines += s.lines;
      bytes += s.bytes;
    }
    return { lines, bytes };
  }

  /** Whether the active segment or the queue holds lines. */
  get hasActiveData(): boolean {
    return this.queue.length > 0 || this.activeBytes > 0;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.writing;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // Only lines whose write failed can be left: their callers were already told.
    this.queue = [];
    this.queuedBytes = 0;
    await this.fh?.close();
    this.fh = null;
  }
}

/** A line waiting for its group write, with its caller's promise. */
interface Pending {
  line: string;
  bytes: number;
  done: () => void;
  fail: (err: unknown) => void;
}

const noop = () => {};

/** Newline-terminated lines (a torn last line counts as one) and bytes of a file. */
async function countLines(file: string): Promise<{ lines: number; bytes: number }> {
  let lines = 0;
  let bytes = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    bytes += buf.length;
    for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) lines++;
    last = buf[buf.length - 1] ?? last;
  }
  if (last !== 0x0a) lines++;
  return { lines, bytes };
}

/** Appends all of `buf` to the active segment; resolves once it is on stable storage (O_DSYNC, else fdatasync). */
async function writeDurably(fh: FileHandle, buf: Buffer, sync: WalOptions["sync"]): Promise<void> {
  // A regular file takes the whole buffer in one write(2) unless the disk fills up; loop for that case too.
  for (let off = 0; off < buf.length;) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    if (bytesWritten <= 0) throw new Error("decision WAL: the write made no progress");
    off += bytesWritten;
  }
  if (sync === "fsync") await fh.sync();
  else if (!DSYNC) await fh.datasync();
}

/** Makes renames and new files in a directory durable. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename itself is atomic either way.
  } finally {
    await fh.close();
  }
}
