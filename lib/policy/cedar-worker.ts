import "server-only";
import { Worker } from "node:worker_threads";
import { boundCedarCall, cedarModulePath, type DetailedError } from "@/lib/enforcement/cedar";
import { AppError } from "@/lib/errors";

// Admin-supplied Cedar (the editor's check, saves, validation) is parsed in a
// worker thread with its own cedar-wasm instance: a trap, a stack overflow or
// a runaway job there cannot reach the instance the rest of the control plane
// decides with. Each job has a time budget; a worker that traps or overruns is
// terminated and the next job starts a fresh one. The queue is bounded: when
// it is full, the check is refused (429) instead of piling up.

/** Limits of the isolated Cedar worker. */
export const CEDAR_WORKER_LIMITS = {
  /** Wall time of one job (all the Cedar calls of one check), plus WORKER_START_MS when it starts a worker. */
  jobMs: 3000,
  /** Jobs waiting behind the running one. */
  queue: 16,
  /** Heap of the worker's JavaScript (the WASM memory is Cedar's own). */
  heapMb: 64,
} as const;

/** Extra time for a job that starts a worker (loading cedar-wasm takes ~0.1 s, more on a busy machine). */
const WORKER_START_MS = 5000;

/** Functions a job may call: the parsing, validation and formatting entry points. */
const ALLOWED = ["policySetTextToParts", "policyToJson", "policyToText", "checkParsePolicySet", "validate", "formatPolicies", "schemaToText", "checkParseSchema"] as const;
export type IsolatedFn = (typeof ALLOWED)[number];
export interface IsolatedCall {
  fn: IsolatedFn;
  args: unknown[];
}

// Plain CommonJS evaluated by the worker (no bundler or TypeScript loader involved):
// it loads cedar-wasm from the path the parent resolved and runs the calls in order.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const cedar = require(workerData.cedarPath);
const allowed = new Set(workerData.allowed);
parentPort.on("message", ({ id, calls }) => {
  const results = [];
  try {
    for (const c of calls) {
      if (!allowed.has(c.fn)) throw new Error("not an allowed Cedar function");
      results.push(cedar[c.fn](...c.args));
    }
    parentPort.postMessage({ id, results });
  } catch (e) {
    parentPort.postMessage({ id, fatal: String((e && e.name) || "Error") });
  }
});
parentPort.postMessage({ ready: true });
`;

interface Job {
  id: number;
  calls: IsolatedCall[];
  resolve: (r: unknown[]) => void;
  reject: (e: Error) => void;
}

/** One worker at a time, jobs in order, each within its budget (limits default to CEDAR_WORKER_LIMITS). */
export class CedarWorkerPool {
  private worker: Worker | null = null;
  private running: (Job & { timer: NodeJS.Timeout }) | null = null;
  private readonly queue: Job[] = [];
  private nextId = 1;
  /** Workers terminated after a trap or an overrun (for tests and metrics). */
  restarts = 0;

  constructor(private readonly limits: { jobMs: number; queue: number; heapMb: number } = CEDAR_WORKER_LIMITS) {}

  /** Runs the calls as one job. No input bounds here: callers go through `runIsolated`. */
  run(calls: IsolatedCall[]): Promise<unknown[]> {
    if (this.queue.length >= this.limits.queue) return Promise.reject(new AppError("rate_limited", "Too many policy checks are waiting; try again in a moment"));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, calls, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { cedarPath: cedarModulePath(), allowed: [...ALLOWED] },
      resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb, stackSizeMb: 4 },
    });
    // Idle, the worker never keeps the process alive; it is referenced while a job runs (a script awaiting a check).
    w.unref();
    w.on("message", (m: { id?: number; results?: unknown[]; fatal?: string }) => {
      const job = this.running;
      if (!job || m.id !== job.id) return;
      if (m.fatal) this.fail(w, `the policy engine failed on this input (${m.fatal.slice(0, 40)}) and was restarted`);
      else this.finish(job, () => job.resolve(m.results ?? []));
    });
    w.on("error", () => this.fail(w, "the policy engine failed on this input and was restarted"));
    w.on("exit", () => {
      if (this.worker === w) this.fail(w, "the policy engine stopped and was restarted");
    });
    return w;
  }

  private finish(job: Job & { timer: NodeJS.Timeout }, settle: () => void) {
    clearTimeout(job.timer);
    this.running = null;
    this.worker?.unref();
    settle();
    this.pump();
  }

  /** Ends the running job with an error and drops the worker: a trapped or overrun instance is never used again. */
  private fail(w: Worker, message: string) {
    if (this.worker !== w) return;
    this.worker = null;
    this.restarts++;
    void w.terminate();
    const job = this.running;
    if (job) this.finish(job, () => job.reject(new CedarIsolationError(message)));
    else this.pump();
  }

  private pump(): void {
    if (this.running) return;
    const job = this.queue.shift();
    if (!job) return;
    let w: Worker;
    const fresh = !this.worker;
    try {
      w = this.worker ??= this.spawn();
    } catch {
      job.reject(new CedarIsolationError("the policy engine could not be started"));
      return this.pump();
    }
    const timer = setTimeout(() => this.fail(w, `the policy check took longer than ${this.limits.jobMs} ms and was stopped`), this.limits.jobMs + (fresh ? WORKER_START_MS : 0));
    timer.unref();
    this.running = { ...job, timer };
    w.ref();
    try {
      w.postMessage({ id: job.id, calls: job.calls });
    } catch {
      // Not cloneable: this job's input is wrong, the worker is fine.
      this.finish(this.running, () => job.reject(new CedarIsolationError("the policy check could not be sent to the policy engine")));
    }
  }
}

/** A job ended by a trap, a crash or its time budget: the input is refused, the engine restarted. */
export class CedarIsolationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CedarIsolationError";
  }
}

let pool: CedarWorkerPool | null = null;
const thePool = () => (pool ??= new CedarWorkerPool());

/**
 * Runs Cedar calls in the isolated worker, in order, as one job. Each call's
 * input is bounded first (the same bounds as the in-process engine): a call
 * refused there answers a Cedar failure without reaching the worker.
 */
export async function runIsolated(calls: IsolatedCall[]): Promise<unknown[]> {
  const out: unknown[] = new Array(calls.length);
  const send: IsolatedCall[] = [];
  const at: number[] = [];
  calls.forEach((c, i) => {
    const refused = boundCedarCall(c.fn, c.args);
    if (refused) out[i] = { type: "failure", errors: refused, warnings: [] as DetailedError[] };
    else {
      send.push(c);
      at.push(i);
    }
  });
  if (send.length) {
    const results = await thePool().run(send);
    results.forEach((r, k) => (out[at[k]!] = r));
  }
  return out;
}

/** How many isolated workers were replaced after a trap, a crash or an overrun. */
export function cedarWorkerRestarts(): number {
  return pool?.restarts ?? 0;
}
