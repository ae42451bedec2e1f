import { constants } from "node:fs";
import { appendFile, mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";

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
 * The active segment when it is pre-zeroed (`MANDATE_WAL_PREZERO=1`): opened for
 * positional writes, not appending. Each group overwrites zeros at the data
 * end; the blocks are allocated and written already and the file size does
 * not change, so on ext4 the O_DSYNC write needs no journal commit, only the
 * data and a cache flush (docs/operations.md, "Eighth round").
 */
const PREZERO_FLAGS = constants.O_RDWR | DSYNC;
/** The next active segment, zero-filled and synced in the background while the current one fills; it never holds a line. */
export const NEXT_FILE = "decisions.next";
/** Zeros past maxSegmentBytes, so the group that crosses the seal threshold still overwrites zeros. */
export const PREZERO_HEADROOM = 256 * 1024;
/**
 * The smallest pre-zeroed segment. A segment is sized for twice the data of
 * the last one sealed (the shipper seals every second), so an agent writes
 * about twice its data again in zeros, not maxSegmentBytes per seal.
 */
export const PREZERO_MIN = 64 * 1024;
/** Zeros are written, and files scanned, this many bytes at a time. */
const CHUNK = 1024 * 1024;
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
  /**
   * true (`MANDATE_WAL_PREZERO=1`): the active segment is a file of zeros overwritten in place;
   * false (default; `MANDATE_WAL_PREZERO=0` or unset): appended to. Off by default: measured faster per
   * write, not faster through the gateway, and worse at c=32 p99 (docs/operations.md, "Eighth round").
   */
  prezero?: boolean;
}

/**
 * Segmented NDJSON log of decisions in the data dir.
 *
 * - `decisions.wal` is the active segment. `append()` normalizes the record
 *   (every bound of the decision record, so ingest never refuses it) and
 *   resolves only once it is on stable storage: no decision record, no
 *   answer. Group commit: when no write is running, an append is written at
 *   once; the appends that arrive while one durable write runs are written
 *   together by the next one, so a burst costs a few device flushes, not one
 *   each. `flush()` resolves once every line queued before it is on disk.
 * - Appending (the default): the active segment is opened O_APPEND | O_DSYNC.
 * - Pre-zeroed (`MANDATE_WAL_PREZERO=1`): the active segment is created as
 *   real zeros, written and fsynced (not a hole: maxSegmentBytes +
 *   PREZERO_HEADROOM at first, then twice the data of the last segment
 *   sealed, at least PREZERO_MIN), and each group is written O_DSYNC at the data end
 *   with a positional write: the bytes and blocks exist, the size does not
 *   change, so the write's durability needs no file-system journal commit.
 *   The data end is the first NUL byte (a JSON line never holds one:
 *   JSON.stringify escapes U+0000 and UTF-8 encodes no other character with
 *   a zero byte). A failed write is retried at the same offset with the same
 *   bytes first (idempotent, nothing torn is left). The next segment
 *   (`decisions.next`) is zero-filled and synced in the background while
 *   this one fills, so no call waits for zero-filling (if it is not ready at
 *   seal time, the seal makes it). A group that does not fit the zeros left
 *   seals the segment first (a group larger than a whole segment extends it).
 *   Either way the write(2) returns once its bytes (and any new file size)
 *   are durable, as write + fdatasync would (platforms without O_DSYNC:
 *   write, then fdatasync); the directory entry of every segment is fsynced
 *   when the file is created or renamed. That holds across a power cut as
 *   far as the device honours cache flushes (docs/operations.md, "Decision
 *   log durability").
 * - `seal()` (called by the shipper when the active segment holds data, and by
 *   the writer itself past `maxSegmentLines`/`maxSegmentBytes`) runs in the
 *   write chain: pending lines are written, the file is closed and renamed to
 *   `decisions-<seq>.sealed` (atomic), a new active file is put in place
 *   (created; pre-zeroed: the prepared `decisions.next` renamed) and the
 *   directory is fsynced once for both. Appends made meanwhile wait in
 *   memory and go to the new file, so no line is ever in two segments or in
 *   none. Pre-zeroed, the sealed file's zeros are then cut (ftruncate to its
 *   data + fsync) after the write chain moved on, and only then is it handed
 *   out (`seal()` resolves then): every reader of a sealed segment sees
 *   exactly its lines; a crash before the cut leaves zeros that the scan at
 *   open cuts.
 * - Sealed segments are handed out oldest first (`segments()`); the shipper
 *   deletes one (`acknowledge`) only after the control plane acknowledged every
 *   line of it, or moves it to `decisions-<seq>.rejected` (`reject`).
 * - At open: leftover sealed segments are picked up, the sequence continues
 *   after the highest one (a sealed file holding a NUL is cut there), a
 *   leftover `decisions.next` is deleted, and the
 *   active file's data end is found (its first NUL, else its size: a file of
 *   an earlier version has no zeros). A last line torn by a crash gets a
 *   newline so it stays one (unparseable) line of its own; anything past the
 *   data end that is not zero (a torn multi-sector write can leave bytes
 *   after a NUL; no caller was told such a line was written) is zeroed
 *   (pre-zeroed) or cut off (appending: so turning the switch off continues
 *   a pre-zeroed file), and the zeros are extended to maxSegmentBytes +
 *   PREZERO_HEADROOM.
 */
export class DecisionWal {
  readonly dir: string;
  readonly file: string;
  private readonly nextFile: string;
  private fh: FileHandle | null = null;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private activeLines = 0;
  /** Data bytes of the active segment, zeros not counted: where the next group is written when pre-zeroed. */
  private activeBytes = 0;
  private readonly sealed = new Map<number, Segment>();
  private nextSeq = 1;
  private retryTimer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private scanned = false;
  /** How records are made durable (WalOptions.sync; MANDATE_WAL_SYNC=fsync for the way before, as benches compare). */
  private readonly sync: "dsync" | "fsync";
  /** WalOptions.prezero (MANDATE_WAL_PREZERO=1 turns it on). */
  readonly prezero: boolean;
  /** The largest pre-zeroed segment (maxSegmentBytes + PREZERO_HEADROOM): the first one made, and any made after a full one. */
  readonly maxCapacity: number;
  /** Size of the active pre-zeroed segment (where its zeros end). */
  private activeCapacity = 0;
  /** The background preparation of `decisions.next`: true once it is zero-filled and synced, false if that failed. */
  private nextPrep: Promise<boolean> | null = null;
  /** Segments sealed pre-zeroed whose zeros are not cut yet: not handed out, counted in the backlog. */
  private readonly uncut = new Map<number, Segment>();
  /** The chain of cutSealed() runs. */
  private cuts: Promise<void> = Promise.resolve();
  /** Data bytes of the last segment this process sealed (null: none yet), which sizes the next pre-zeroed one. */
  private lastSealedBytes: number | null = null;
  /** Set after a failed write when pre-zeroed: the file is reopened as it is and the group rewritten at the same offset. */
  private retryInPlace = false;

  constructor(
    dataDir: string,
    private readonly opts: WalOptions = {},
  ) {
    this.dir = dataDir;
    this.file = path.join(dataDir, ACTIVE_FILE);
    this.nextFile = path.join(dataDir, NEXT_FILE);
    this.sync = opts.sync ?? (process.env.MANDATE_WAL_SYNC === "fsync" ? "fsync" : "dsync");
    this.prezero = opts.prezero ?? process.env.MANDATE_WAL_PREZERO === "1";
    this.maxCapacity = (opts.maxSegmentBytes ?? 4 * 1024 * 1024) + PREZERO_HEADROOM;
  }

  /** Scans the data dir (leftover segments, torn tail, stray bytes) and opens the active segment. */
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
          this.sealed.set(seq, { seq, file, ...(await scanSealed(file)) });
        }
      }
      // Never holds a line: whatever a crash left of it is made again.
      await unlink(this.nextFile).catch(ignoreMissing);
      this.scanned = true;
    }
    await this.openActive(!this.retryInPlace);
    this.retryInPlace = false;
    // The active file may have just been created: its directory entry is made durable too.
    await syncDir(this.dir);
    this.prepareNext();
  }

  /**
   * Opens the active segment. With `recover`, its data end and lines are
   * read from the file and its tail repaired; without (a retry after a failed
   * pre-zeroed write), the in-memory data end stands and the group is written
   * there again.
   */
  private async openActive(recover: boolean): Promise<void> {
    if (!this.prezero) {
      this.fh = await open(this.file, this.sync === "fsync" ? ACTIVE_FLAGS & ~DSYNC : ACTIVE_FLAGS, 0o600);
      // A file left pre-zeroed (the switch turned off) is cut at its data end first.
      if (recover) this.setCounts(await repairTail(this.fh, null, this.sync));
      return;
    }
    const flags = this.sync === "fsync" ? PREZERO_FLAGS & ~DSYNC : PREZERO_FLAGS;
    let fh = await open(this.file, flags).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
      return null;
    });
    if (!fh) {
      // No active segment (first start, or a seal stopped between its renames): the prepared one becomes it.
      await this.installNext();
      fh = await open(this.file, flags);
      recover = true;
    }
    this.fh = fh;
    if (recover) this.setCounts(await repairTail(fh, this.maxCapacity, this.sync));
    this.activeCapacity = (await fh.stat()).size;
  }

  private setCounts({ lines, bytes }: { lines: number; bytes: number }): void {
    this.activeLines = lines;
    this.activeBytes = bytes;
  }

  /**
   * Starts zero-filling `decisions.next` in the background unless it is under way or done: twice the data of the
   * last segment sealed (rounded up to 64 KiB, at least PREZERO_MIN), the largest size until one was sealed.
   */
  private prepareNext(): void {
    if (!this.prezero || this.closed || this.nextPrep) return;
    const last = this.lastSealedBytes;
    const size = last === null ? this.maxCapacity : Math.min(this.maxCapacity, Math.max(PREZERO_MIN, Math.ceil((2 * last) / PREZERO_MIN) * PREZERO_MIN));
    this.nextPrep = zeroFile(this.nextFile, size).then(
      () => true,
      (err: unknown) => {
        // Disk full or failing: said now; the seal tries again (and fails the seal, not a call) or writes on past the zeros.
        this.opts.onError?.(err);
        return false;
      },
    );
  }

  /** Renames the prepared next segment to the active file (made now if the background one is not there) and syncs the directory. */
  private async installNext(): Promise<void> {
    const ready = this.nextPrep ? await this.nextPrep : false;
    this.nextPrep = null;
    if (!ready) await zeroFile(this.nextFile, this.maxCapacity);
    await rename(this.nextFile, this.file);
    await syncDir(this.dir);
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
    return new Promise<void>((resolve, reject) => {
      const bytes = Buffer.byteLength(line);
      this.queue.push({ line, bytes, done: resolve, fail: reject });
      this.queuedBytes += bytes;
      this.kick();
    });
  }

  /** Starts the next group write unless one is running (then it starts when that one ends). */
  private kick(): void {
    if (this.inFlight || this.retryTimer || !this.queue.length) return;
    this.inFlight = true;
    const group = this.queue.splice(0, this.opts.maxBatch ?? this.queue.length);
    const run = this.writing.then(() => this.writeGroup(group));
    this.writing = run.then(() => {
      this.inFlight = false;
      this.kick();
    });
  }

  private async writeGroup(group: Pending[]): Promise<void> {
    const bytes = group.reduce((n, p) => n + p.bytes, 0);
    // Whether the failure came from the group's write itself (the file open, its data end known).
    let writing = false;
    try {
      if (!this.fh) await this.open();
      let text = "";
      for (const p of group) text += p.line;
      const buf = Buffer.from(text, "utf8");
      if (this.prezero && this.activeBytes > 0 && this.activeBytes + buf.length > this.activeCapacity) {
        // Not enough zeros left for the whole group: seal first, so no line is split or written past the zeros.
        // If the seal fails (no next segment: the disk is full), the group is written past the zeros: it
        // extends the file (durable all the same), or fails on a full disk and the callers are refused.
        await this.sealNow().catch((err: unknown) => this.opts.onError?.(err));
        if (!this.fh) await this.open();
      }
      writing = true;
      await writeDurably(this.fh!, buf, this.prezero ? this.activeBytes : null, this.sync);
    } catch (err) {
      this.opts.onError?.(err);
      // The waiting callers learn it now (they must not answer); the lines stay queued and are retried on a
      // reopened file. Pre-zeroed: at the same offset, the same bytes first (a partial write is overwritten).
      // Appending: after openActive() terminated a torn last line (a partial append may have landed: the ids make a repeat harmless).
      for (const p of group) p.fail(err);
      await this.fh?.close().catch(() => {});
      this.fh = null;
      if (writing) this.retryInPlace = this.prezero;
      this.queue = [...group.map((p) => ({ ...p, done: noop, fail: noop })), ...this.queue];
      if (!this.closed) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.kick();
        }, RETRY_MS);
      }
      return;
    }
    this.queuedBytes -= bytes;
    this.activeLines += group.length;
    this.activeBytes += bytes;
    for (const p of group) p.done();
    if (this.activeLines >= (this.opts.maxSegmentLines ?? 5000) || this.activeBytes >= (this.opts.maxSegmentBytes ?? 4 * 1024 * 1024)) {
      await this.sealNow().catch((err: unknown) => this.opts.onError?.(err));
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
    return this.flush().then(async () => {
      // In the write chain: no group write runs while the file is closed and renamed.
      const sealed = this.writing.then(() => this.sealNow());
      this.writing = sealed.then(noop, noop);
      await sealed;
      // Pre-zeroed: the zeros of what was sealed are cut after the chain moved on; the caller gets the segment once it is exact.
      await this.cutSealed();
      return sealed;
    });
  }

  private async sealNow(): Promise<Segment | null> {
    if (this.closed || this.activeBytes === 0) return null;
    if (this.prezero) {
      // The next segment first: if it cannot be had (disk full), the active one stays as it is.
      if (!(await this.nextPrep)) {
        this.nextPrep = null;
        await zeroFile(this.nextFile, this.maxCapacity);
        this.nextPrep = Promise.resolve(true);
      }
      if (!this.fh) await this.open();
      if (this.activeBytes === 0) return null;
    }
    const seq = this.nextSeq++;
    const file = path.join(this.dir, segmentName(seq, "sealed"));
    await this.fh?.close();
    this.fh = null;
    await rename(this.file, file);
    const seg: Segment = { seq, file, lines: this.activeLines, bytes: this.activeBytes };
    this.activeLines = 0;
    this.activeBytes = 0;
    if (this.prezero) {
      // Handed out only once its zeros are cut (cutSealed, after this write chain moved on; a crash before that
      // leaves zeros the scan at open cuts). Counted in the backlog meanwhile.
      this.uncut.set(seq, seg);
      this.lastSealedBytes = seg.bytes;
      // The prepared file takes the active name; one directory fsync makes both renames durable before anything is
      // written to it, as the appending path's rename and create share one (both in this directory: ordered).
      await this.installNext();
      await this.openActive(false);
      this.prepareNext();
      // Failures are said through onError by the chain, and tried again by the next seal.
      this.cutSealed().catch(noop);
    } else {
      this.sealed.set(seq, seg);
      await this.openActive(true);
      await syncDir(this.dir);
    }
    return seg;
  }

  /** Size of the active pre-zeroed segment, zeros included (0 when appending). */
  get capacity(): number {
    return this.activeCapacity;
  }

  /** Cuts the zeros off segments sealed pre-zeroed (ftruncate to their data + fsync) and hands them out; one at a time. */
  private cutSealed(): Promise<void> {
    const run = this.cuts.then(async () => {
      for (const seg of [...this.uncut.values()].sort((a, b) => a.seq - b.seq)) {
        const fh = await open(seg.file, constants.O_RDWR);
        try {
          await fh.truncate(seg.bytes);
          await fh.sync();
        } finally {
          await fh.close();
        }
        this.uncut.delete(seg.seq);
        this.sealed.set(seg.seq, seg);
      }
    });
    // A failure (the disk) is said once here and tried again by the next seal; the lines stay on disk meanwhile.
    this.cuts = run.catch((err: unknown) => this.opts.onError?.(err));
    return run;
  }

  /** Sealed segments not yet acknowledged, oldest first. */
  segments(): Segment[] {
    return [...this.sealed.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Every line of the segment was acknowledged: delete it. */
  async acknowledge(seg: Segment): Promise<void> {
    await unlink(seg.file).catch(ignoreMissing);
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

  /** Lines and bytes not yet acknowledged by the control plane: queued, in the active segment (its data, not its zeros) and in sealed ones. */
  backlog(): { lines: number; bytes: number } {
    let lines = this.queue.length + this.activeLines;
    let bytes = this.queuedBytes + this.activeBytes;
    for (const s of [...this.sealed.values(), ...this.uncut.values()]) {
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
    await this.nextPrep;
    this.nextPrep = null;
    await this.cuts;
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
const ignoreMissing = (err: NodeJS.ErrnoException) => {
  if (err.code !== "ENOENT") throw err;
};

/** The data of a log file's text: everything before its first NUL (the zeros of a pre-zeroed segment follow it). */
export const dataOf = (text: string): string => {
  const nul = text.indexOf("\u0000");
  return nul < 0 ? text : text.slice(0, nul);
};

/**
 * Newline-terminated lines (a torn last line counts as one) and bytes of a
 * sealed file. One sealed pre-zeroed whose zeros a crash kept from being cut
 * is cut at its first NUL here (ftruncate + fsync), so every reader sees
 * exactly its lines.
 */
async function scanSealed(file: string): Promise<{ lines: number; bytes: number }> {
  const buf = await readFile(file);
  const nul = buf.indexOf(0);
  const data = nul < 0 ? buf : buf.subarray(0, nul);
  if (nul >= 0) {
    const fh = await open(file, constants.O_RDWR);
    try {
      await fh.truncate(nul);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  let lines = 0;
  for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, i + 1)) lines++;
  if (data.length && data[data.length - 1] !== 0x0a) lines++;
  return { lines, bytes: data.length };
}

/**
 * Finds the active file's data end (its first NUL, else its size) and its
 * lines (a torn last line counts as one), and repairs what follows: a torn
 * last line gets its newline; then, pre-zeroed (`capacity` given), every
 * byte after the data end up to max(size, capacity) is made zero (stray
 * bytes of a torn write zeroed, a file of an earlier version padded);
 * appending (`capacity` null), the file is cut at its data end. Durable
 * before it returns. Returns the data's lines and bytes.
 */
async function repairTail(fh: FileHandle, capacity: number | null, sync: WalOptions["sync"]): Promise<{ lines: number; bytes: number }> {
  const { size } = await fh.stat();
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)));
  let end = -1;
  let lines = 0;
  let last = 0x0a;
  let strays = false;
  for (let pos = 0; pos < size;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead <= 0) break;
    const chunk = buf.subarray(0, bytesRead);
    if (end < 0) {
      const nul = chunk.indexOf(0);
      const data = nul < 0 ? chunk : chunk.subarray(0, nul);
      for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, i + 1)) lines++;
      if (data.length) last = data[data.length - 1]!;
      if (nul >= 0) {
        end = pos + nul;
        strays = chunk.subarray(nul).some((b) => b !== 0);
      }
    } else if (!strays) {
      strays = chunk.some((b) => b !== 0);
    }
    pos += bytesRead;
    if (end >= 0 && strays) break;
  }
  if (end < 0) end = size;
  const torn = last !== 0x0a;
  if (torn) lines++;
  const tail = torn ? Buffer.from("\n") : Buffer.alloc(0);
  if (capacity === null) {
    if (size > end) await fh.truncate(end);
    // Appending: the newline goes to the (new) end of the file.
    if (tail.length) await writeDurably(fh, tail, null, sync);
    if (size > end) await fh.sync();
  } else {
    const target = Math.max(size, capacity);
    if (torn || strays || size < capacity) {
      await writeDurably(fh, tail, end, sync);
      await writeZeros(fh, end + tail.length, target);
      await fh.sync();
    }
  }
  return { lines, bytes: end + tail.length };
}

/** Writes real zeros over [from, to) of a file (not a hole: the blocks are allocated and written). */
async function writeZeros(fh: FileHandle, from: number, to: number): Promise<void> {
  const zeros = Buffer.alloc(Math.min(CHUNK, Math.max(to - from, 1)));
  for (let pos = from; pos < to;) {
    const { bytesWritten } = await fh.write(zeros, 0, Math.min(zeros.length, to - pos), pos);
    if (bytesWritten <= 0) throw new Error("decision WAL: zero-filling made no progress");
    pos += bytesWritten;
  }
}

/** Creates `file` as `size` bytes of zeros, written and fsynced (a full disk fails here, not on a call's write). */
async function zeroFile(file: string, size: number): Promise<void> {
  const fh = await open(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await writeZeros(fh, 0, size);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    // Give back what a full disk let it take.
    await unlink(file).catch(() => {});
    throw err;
  }
  await fh.close();
}

/**
 * Writes all of `buf` at `pos` (null: at the end, the file being O_APPEND); resolves once it is on stable
 * storage (O_DSYNC, else fdatasync; "fsync": fsync). A retry writes the same bytes at the same place.
 */
async function writeDurably(fh: FileHandle, buf: Buffer, pos: number | null, sync: WalOptions["sync"]): Promise<void> {
  // A regular file takes the whole buffer in one write(2) unless the disk fills up; loop for that case too.
  for (let off = 0; off < buf.length;) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos === null ? null : pos + off);
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
