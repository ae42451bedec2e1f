import { mkdir, open, type FileHandle } from "node:fs/promises";
import path from "node:path";

/**
 * One decision as written to the write-ahead log. The fields match the
 * control plane's decision line (lib/decisions/ingest.ts) plus `time` and
 * `agentId`, which the shipper drops (the id is a UUIDv7, so it carries the
 * time; the agent comes from its key).
 */
export interface DecisionRecord {
  id: string;
  time: string;
  agentId: string | null;
  bundleRevision: number | null;
  tenantId: string | null;
  serverId: string;
  method: string;
  tool: string | null;
  user: string | null;
  client: string | null;
  scopes: string[];
  outcome: "allow" | "deny";
  determining: string[];
  reason: string;
  /** Microseconds spent deciding (integer, as lib/decisions/ingest expects). */
  latencyUs: number;
}

/**
 * Append-only NDJSON log of decisions, `<dataDir>/decisions.wal`. Lines are
 * queued and written with one append + fsync per batch (every `intervalMs`
 * or `maxBatch` lines), so a burst costs one fsync. `flush()` resolves once
 * every line queued before it is on disk.
 */
export class DecisionWal {
  readonly file: string;
  private fh: FileHandle | null = null;
  private queue: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    dataDir: string,
    private readonly opts: { intervalMs?: number; maxBatch?: number; onError?: (err: unknown) => void } = {},
  ) {
    this.file = path.join(dataDir, "decisions.wal");
  }

  async open(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    this.fh = await open(this.file, "a", 0o600);
  }

  append(rec: DecisionRecord): void {
    if (this.closed) return;
    this.queue.push(JSON.stringify(rec) + "\n");
    if (this.queue.length >= (this.opts.maxBatch ?? 200)) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.opts.intervalMs ?? 50);
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.queue.join("");
    this.queue = [];
    if (!batch) return this.writing;
    this.writing = this.writing.then(async () => {
      try {
        if (!this.fh) await this.open();
        await this.fh!.appendFile(batch, "utf8");
        await this.fh!.sync();
      } catch (err) {
        this.opts.onError?.(err);
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    await this.fh?.close();
    this.fh = null;
  }
}
