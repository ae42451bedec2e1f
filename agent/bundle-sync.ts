import { chmod, mkdir, open, readFile, rename, writeFile } from "node:fs/promises";
import { backoff, sleep } from "./timing";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import path from "node:path";
import type { JWK } from "jose";
import { BundleRejected, verifyBundle, type BundleContent, type SignedBundle } from "@/lib/enforcement/bundle";
import { PolicyEngine } from "@/lib/enforcement/engine";
import { MAX_REPORTED_CREDENTIALS, type CredentialInUse, type HeartbeatInput } from "@/lib/enforcement/heartbeat";
import { AGENT_VERSION, KEY_FILE } from "./config";
import type { Metrics } from "./metrics";

/** The bundle in force: verified content, its engine, and when it was installed. */
export interface Installed {
  signed: SignedBundle;
  content: BundleContent;
  engine: PolicyEngine;
  installedAt: number;
  source: "control-plane" | "disk";
}

export interface SyncOptions {
  controlPlaneUrl: string;
  enrollmentToken: string | null;
  agentKey: string | null;
  fleetId: string | null;
  name: string;
  dataDir: string;
  keys: Record<string, JWK>;
  waitSeconds: number;
  metrics: Metrics;
  heartbeatMs?: number;
  log?: (msg: string) => void;
  /** The vault entries whose secret the agent holds and their versions, reported in each heartbeat (the vault page shows them). Must not throw. */
  credentialsInUse?: () => CredentialInUse[];
  /** Called after each swap (from disk or the control plane), e.g. to prefetch credentials. Must not throw. */
  onInstall?: (installed: Installed) => void;
  /**
   * How old the bundle in force may get (since its signed creation time, or since the control plane last
   * confirmed it is current, whichever is later) before the agent stops enforcing it and refuses every call.
   */
  maxBundleAgeSeconds?: number;
  /** The clock (ms since the epoch). */
  now?: () => number;
  /** Requests to the control plane, through the egress guard (lib/net/agent.ts; main passes the agent's own). */
  fetch?: FetchLike;
}

export const BUNDLE_FILE = "bundle.json";
/**
 * The highest revision this agent ever installed, and when the control plane last confirmed the bundle in
 * force: kept apart from the bundle file, so deleting the bundle does not reopen the door to an older one.
 */
export const STATE_FILE = "bundle-state.json";
export const DEFAULT_MAX_BUNDLE_AGE_SECONDS = 24 * 3600;
const MAX_ERRORS = 20;

interface SyncState {
  fleetId: string | null;
  /** Highest revision ever installed (0: none). */
  revision: number;
  /** When the control plane last confirmed the bundle in force (ms, this agent's clock; 0: never). */
  confirmedAt: number;
}

/**
 * Pulls the fleet's signed bundle and keeps the last good one in force:
 * enroll once, then long-poll with If-None-Match; every bundle is verified
 * with the pinned keys, for this fleet, not older than the one held, and its
 * policies must parse, before the engine is swapped (one assignment) and the
 * bundle is written to disk (temp file + rename). A refused bundle leaves the
 * previous one in force. Network errors back off with jitter.
 */
export class BundleSync {
  private installed: Installed | null = null;
  private key: string | null;
  agentId: string | null = null;
  fleetId: string | null;
  private readonly errors: string[] = [];
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private readonly log: (msg: string) => void;
  private state: SyncState = { fleetId: null, revision: 0, confirmedAt: 0 };
  /** The state file exists but cannot be read: no bundle from disk is trusted until the control plane sends one. */
  private stateUnreadable = false;
  /** Until when (ms) the bundle in force may be enforced. */
  private freshUntil = 0;
  private wasStale = false;
  private readonly now: () => number;
  private readonly maxAgeMs: number;

  constructor(private readonly o: SyncOptions) {
    this.key = o.agentKey;
    this.fleetId = o.fleetId;
    this.log = o.log ?? ((m) => console.log(`[agent] ${m}`));
    if (o.agentKey) this.agentId = agentIdOf(o.agentKey);
    this.now = o.now ?? Date.now;
    this.maxAgeMs = (o.maxBundleAgeSeconds ?? DEFAULT_MAX_BUNDLE_AGE_SECONDS) * 1000;
  }

  /**
   * The bundle to enforce, or null: none verified yet, or the one held is older than the maximum age
   * without a fresh confirmation from the control plane (then every call is refused, fail closed).
   */
  get current(): Installed | null {
    const cur = this.installed;
    if (!cur) return null;
    const stale = this.now() > this.freshUntil;
    if (stale !== this.wasStale) {
      this.wasStale = stale;
      this.o.metrics.bundleStale = stale ? 1 : 0;
      if (stale)
        this.error(`bundle revision ${cur.content.manifest.revision} is older than the maximum age (${this.maxAgeMs / 1000} s) and the control plane has not confirmed it: refusing every call`);
      else this.log(`bundle revision ${cur.content.manifest.revision} confirmed fresh again`);
    }
    return stale ? null : cur;
  }

  /** Until when (ms, this agent's clock) the bundle in force may be enforced without a new confirmation. */
  get freshUntilMs(): number {
    return this.freshUntil;
  }

  /** The bundle held, even when too old to enforce (for heartbeats and status). */
  get held(): Installed | null {
    return this.installed;
  }

  /** The highest revision this agent ever installed (persisted across restarts and bundle deletion). */
  get highestRevision(): number {
    return this.state.revision;
  }

  /** The agent key, once enrolled (or given); null before. */
  get agentKey(): string | null {
    return this.key;
  }

  get recentErrors(): string[] {
    return [...this.errors];
  }

  private error(msg: string): void {
    this.log(msg);
    this.errors.push(`${new Date().toISOString()} ${msg}`.slice(0, 1000));
    if (this.errors.length > MAX_ERRORS) this.errors.shift();
  }

  /** Loads the key (enrolling if needed) and the last good bundle from disk, then starts polling and heartbeats. */
  async start(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true, mode: 0o700 });
    await this.loadStoredKey();
    await this.loadState();
    await this.loadFromDisk();
    this.loop = this.run();
    const beat = () => {
      this.heartbeatTimer = setTimeout(() => void this.heartbeat().finally(() => !this.abort.signal.aborted && beat()), this.o.heartbeatMs ?? 15_000);
      this.heartbeatTimer.unref();
    };
    beat();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    await this.loop?.catch(() => {});
  }

  private async loadStoredKey(): Promise<void> {
    if (this.key) return;
    try {
      const stored = JSON.parse(await readFile(path.join(this.o.dataDir, KEY_FILE), "utf8")) as { agentId: string; fleetId: string; agentKey: string };
      this.key = stored.agentKey;
      this.agentId = stored.agentId;
      this.fleetId ??= stored.fleetId;
    } catch {
      // Not enrolled yet: the loop enrolls with the token.
    }
  }

  private async enroll(): Promise<void> {
    if (!this.o.enrollmentToken) throw new Error("no agent key and no enrollment token");
    const res = await (this.o.fetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(`${this.o.controlPlaneUrl}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: this.o.enrollmentToken, name: this.o.name, version: AGENT_VERSION }),
      signal: this.abort.signal,
    });
    if (res.status !== 201) throw new Fatal(`enrollment refused (${res.status}): ${await res.text().then((t) => t.slice(0, 300))}`);
    const out = (await res.json()) as { agentId: string; fleetId: string; agentKey: string };
    const file = path.join(this.o.dataDir, KEY_FILE);
    await writeFile(file, JSON.stringify(out), { mode: 0o600 });
    await chmod(file, 0o600);
    this.key = out.agentKey;
    this.agentId = out.agentId;
    if (this.fleetId && this.fleetId !== out.fleetId) throw new Fatal(`enrolled into fleet ${out.fleetId}, but configured for ${this.fleetId}`);
    this.fleetId = out.fleetId;
    this.log(`enrolled as ${out.agentId} in fleet ${out.fleetId}`);
  }

  /** Parses the installed engine's policy slices in the background, so the first call of each tool finds its slice ready; stops once another engine is in force. */
  private warm(installed: Installed): void {
    const engine = installed.engine;
    void engine.prepareAll(() => this.abort.signal.aborted || this.installed?.engine !== engine);
  }

  /** Verifies a bundle and its policies; returns what to install, or throws (BundleRejected or a parse error). */
  private async verify(signed: SignedBundle, minRevision: number | undefined, source: Installed["source"]): Promise<Installed> {
    const content = await verifyBundle(signed, { keys: this.o.keys, fleetId: this.fleetId ?? undefined, minRevision });
    // A revision that changed only live sections (revocations, client approval, credentials, masking) keeps
    // the engine, with its preparsed policy slices warm: a revocation then costs no Cedar parsing at all.
    const cur = this.installed;
    const reuse = cur !== null && sameDecisionInputs(cur.content, content);
    const engine = reuse ? cur.engine : new PolicyEngine(content);
    // Every cache goes with a bundle change: the engine's decision memo too (its answers would still be Cedar's).
    if (reuse) engine.forgetDecisions();
    return { signed, content, engine, installedAt: Date.now(), source };
  }

  private async loadState(): Promise<void> {
    let raw: string;
    try {
      raw = await readFile(path.join(this.o.dataDir, STATE_FILE), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        this.stateUnreadable = true;
        this.error(`cannot read ${STATE_FILE}: ${describe(err)}`);
      }
      return;
    }
    try {
      const v = JSON.parse(raw) as Partial<SyncState>;
      if (!Number.isSafeInteger(v.revision) || (v.revision as number) < 0 || typeof v.confirmedAt !== "number" || !Number.isFinite(v.confirmedAt)) throw new Error("malformed");
      this.state = { fleetId: typeof v.fleetId === "string" ? v.fleetId : null, revision: v.revision as number, confirmedAt: v.confirmedAt };
    } catch {
      this.stateUnreadable = true;
      this.error(`${STATE_FILE} is malformed: the bundle on disk is not trusted until the control plane sends one`);
    }
  }

  /** Writes the state (temp file + rename). A failure is logged: enforcement goes on with what is in memory. */
  private async saveState(): Promise<void> {
    const file = path.join(this.o.dataDir, STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(this.state), { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      this.error(`could not write ${STATE_FILE}: ${describe(err)}`);
    }
  }

  /** The lowest revision the agent may install: never below one it installed before (of this fleet). */
  private floor(): number | undefined {
    const held = this.installed?.content.manifest.revision ?? 0;
    const remembered = this.state.fleetId === null || this.fleetId === null || this.state.fleetId === this.fleetId ? this.state.revision : 0;
    const min = Math.max(held, remembered);
    return min > 0 ? min : undefined;
  }

  /** Recomputes until when the bundle in force may be enforced: its signed creation time or the last confirmation, plus the maximum age. */
  private refreshFreshness(): void {
    const cur = this.installed;
    const created = cur ? Date.parse(cur.content.manifest.createdAt) : NaN;
    this.freshUntil = Math.max(Number.isNaN(created) ? 0 : created, this.state.confirmedAt) + this.maxAgeMs;
  }

  /** The control plane said the bundle in force is its current one. */
  private async confirmed(): Promise<void> {
    const previous = this.state.confirmedAt;
    this.state.confirmedAt = this.now();
    this.refreshFreshness();
    // On disk the confirmation only matters across restarts: at most one write every 10 s.
    if (this.state.confirmedAt - previous >= 10_000) await this.saveState();
  }

  private async loadFromDisk(): Promise<void> {
    let raw: string;
    try {
      raw = await readFile(path.join(this.o.dataDir, BUNDLE_FILE), "utf8");
    } catch {
      return;
    }
    if (this.stateUnreadable) return;
    try {
      const got = await this.verify(JSON.parse(raw) as SignedBundle, this.floor(), "disk");
      this.fleetId ??= got.content.manifest.fleetId;
      this.installed = got;
      // A confirmation applies to the bundle it confirmed: one loaded from disk at another revision starts unconfirmed.
      if (got.content.manifest.revision !== this.state.revision) this.state.confirmedAt = 0;
      this.refreshFreshness();
      this.o.onInstall?.(got);
      this.warm(got);
      this.log(`loaded bundle revision ${got.content.manifest.revision} from disk`);
    } catch (err) {
      this.o.metrics.bundleRejections++;
      this.error(`bundle on disk refused: ${describe(err)}`);
    }
  }

  private async persist(signed: SignedBundle): Promise<void> {
    const file = path.join(this.o.dataDir, BUNDLE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(signed));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (!this.key) await this.enroll();
        await this.pollOnce();
        this.failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof Fatal) {
          this.error(err.message);
          this.failures = Math.max(this.failures, 5);
        } else {
          this.error(`control plane unreachable: ${describe(err)}`);
        }
        await sleep(backoff(this.failures++), signal);
      }
    }
  }

  /** One long-poll round. */
  async pollOnce(): Promise<void> {
    const cur = this.installed;
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (cur) headers["if-none-match"] = `"${cur.signed.sha256}"`;
    // A long poll that outlives its wait by far is a dead connection: give up on it and retry.
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout((this.o.waitSeconds + 30) * 1000)]);
    const res = await (this.o.fetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(`${this.o.controlPlaneUrl}/api/v1/agent/bundle?wait=${this.o.waitSeconds}`, { headers, signal });
    if (res.status === 304) {
      await this.confirmed();
      return;
    }
    if (res.status === 404) {
      await res.body?.cancel();
      // Nothing published yet; the server already waited (or wait=0): pause briefly.
      if (this.o.waitSeconds === 0) await sleep(1000, this.abort.signal);
      return;
    }
    if (res.status !== 200) throw new Fatal(`bundle request answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const signed = (await res.json()) as SignedBundle;
    let next: Installed;
    try {
      next = await this.verify(signed, this.floor(), "control-plane");
    } catch (err) {
      this.o.metrics.bundleRejections++;
      this.error(`bundle revision ${signed?.revision} refused, keeping ${cur ? `revision ${cur.content.manifest.revision}` : "none"}: ${describe(err)}`);
      // Do not spin on the same refused bundle.
      await sleep(backoff(3), this.abort.signal);
      return;
    }
    this.fleetId ??= next.content.manifest.fleetId;
    // Remember the revision before enforcing it: after a crash, nothing older is accepted again.
    this.state = { fleetId: next.content.manifest.fleetId, revision: Math.max(this.state.revision, next.content.manifest.revision), confirmedAt: this.now() };
    this.stateUnreadable = false;
    await this.saveState();
    this.installed = next; // the swap: one assignment, requests in flight keep the engine they started with
    this.refreshFreshness();
    this.o.onInstall?.(next);
    this.warm(next);
    this.log(`bundle revision ${next.content.manifest.revision} in force`);
    try {
      await this.persist(signed);
    } catch (err) {
      this.error(`could not write the bundle to disk: ${describe(err)}`);
    }
  }

  async heartbeat(counters: Record<string, number> = this.o.metrics.counters()): Promise<boolean> {
    if (!this.key) return false;
    try {
      const res = await (this.o.fetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(`${this.o.controlPlaneUrl}/api/v1/agent/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.key}`, "content-type": "application/json" },
        body: JSON.stringify({
          version: AGENT_VERSION,
          bundleRevision: this.current?.content.manifest.revision ?? null,
          counters,
          errors: this.errors.slice(-MAX_ERRORS),
          ...(this.o.credentialsInUse ? { credentials: this.o.credentialsInUse().slice(0, MAX_REPORTED_CREDENTIALS) } : {}),
        } satisfies HeartbeatInput),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(10_000)]),
      });
      await res.body?.cancel();
      return res.status === 204;
    } catch {
      return false;
    }
  }
}

class Fatal extends Error {}

const describe = (err: unknown) => (err instanceof BundleRejected ? `${err.reason}: ${err.message}` : err instanceof Error ? err.message : String(err));

/** The agent id inside a key `mda_<id hex>.<secret>` (lib/agents/keys.ts format), when it has that shape. */
function agentIdOf(key: string): string | null {
  const m = /^mda_([0-9a-f]{32})\./.exec(key);
  return m ? `agt_${m[1]}` : null;
}

/** Whether two bundles decide alike: same servers, catalogue and Cedar (policies, schema, entities). */
function sameDecisionInputs(a: BundleContent, b: BundleContent): boolean {
  const key = (c: BundleContent) => JSON.stringify([c.servers, c.catalogue, c.cedar, c.policies]);
  return key(a) === key(b);
}
