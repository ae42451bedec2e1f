/**
 * Suspected in issue 10 and confirmed here: an agent with no bundle on disk
 * accepted any older signed revision (a replayed bundle), and nothing bounded
 * how stale the bundle in force could get. The agent's real bundle client
 * (agent/bundle-sync.ts) against a control plane played by a small HTTP
 * server that serves whatever signed bundle the test (the attacker) chooses,
 * signed with a real Ed25519 key the agent pins.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, unlink } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { JWK } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_FILE, BundleSync, STATE_FILE } from "@/agent/bundle-sync";
import { durationSeconds, loadConfig } from "@/agent/config";
import { Metrics } from "@/agent/metrics";
import { signPayload } from "@/lib/bundles/signing";
import { contentHash, type BundleContent, type SignedBundle } from "@/lib/enforcement/bundle";

const FLEET = "flt_fresh";
const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const kid = "k-fresh";
const publicJwk = { ...(publicKey.export({ format: "jwk" }) as JWK), kid };
const keys = { [kid]: publicJwk };

async function signed(revision: number, createdAt: Date): Promise<SignedBundle> {
  const content = {
    manifest: { format: 1, fleetId: FLEET, revision, parentRevision: revision > 1 ? revision - 1 : null, createdAt: createdAt.toISOString(), compilerVersion: "test" },
    servers: [],
    catalogue: [],
    cedar: { schema: {}, policies: {}, entities: [] },
    policies: {},
    revocations: [],
    approvedClients: [],
    masking: [],
  } as unknown as BundleContent;
  const sha256 = contentHash(content);
  return { revision, sha256, keyId: kid, content, signature: await signPayload({ kid, privateKey, publicJwk }, { sha256, fleetId: FLEET, revision }) };
}

/** The "control plane": serves `serving` (200, or 304 when the agent holds it), or is down. */
let serving: SignedBundle | null = null;
let down = false;
let cp: Server;
let cpUrl: string;
const dirs: string[] = [];
const syncs: BundleSync[] = [];

beforeAll(async () => {
  cp = createServer((req, res) => {
    if (down) return void res.destroy();
    // Hold each answer a little, as a long poll does, so the agent's loop does not spin.
    setTimeout(() => {
      if (req.url?.startsWith("/api/v1/agent/heartbeat")) return void res.writeHead(204).end();
      if (!serving) return void res.writeHead(404).end();
      if (req.headers["if-none-match"] === `"${serving.sha256}"`) return void res.writeHead(304).end();
      res.writeHead(200, { "content-type": "application/json", etag: `"${serving.sha256}"` }).end(JSON.stringify(serving));
    }, 50);
  });
  await new Promise<void>((r) => cp.listen(0, "127.0.0.1", () => r()));
  cpUrl = `http://127.0.0.1:${(cp.address() as AddressInfo).port}`;
});
afterEach(async () => {
  await Promise.all(syncs.splice(0).map((s) => s.stop()));
  down = false;
});
afterAll(async () => {
  await new Promise<void>((r) => cp.close(() => r()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dataDir() {
  const d = await mkdtemp(path.join(tmpdir(), "mandate-fresh-"));
  dirs.push(d);
  return d;
}

function sync(dir: string, o: { maxBundleAgeSeconds?: number; now?: () => number } = {}) {
  const s = new BundleSync({
    controlPlaneUrl: cpUrl,
    enrollmentToken: null,
    agentKey: `mda_${"a".repeat(32)}.secret`,
    fleetId: FLEET,
    name: "fresh",
    dataDir: dir,
    keys,
    waitSeconds: 0,
    metrics: new Metrics(),
    heartbeatMs: 60_000,
    log: () => {},
    ...o,
  });
  syncs.push(s);
  return s;
}

async function until(cond: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("agent bundle freshness", () => {
  it("never installs a revision older than one it installed before, even with the bundle file deleted", async () => {
    const dir = await dataDir();
    serving = await signed(5, new Date());
    const first = sync(dir);
    await first.start();
    await until(() => first.current?.content.manifest.revision === 5);
    await first.stop();
    expect(JSON.parse(await readFile(path.join(dir, STATE_FILE), "utf8"))).toMatchObject({ fleetId: FLEET, revision: 5 });

    // The bundle file is gone (wiped, or the agent re-imaged with its data dir kept) and an old signed revision is replayed.
    await unlink(path.join(dir, BUNDLE_FILE));
    serving = await signed(3, new Date());
    const second = sync(dir);
    await second.start();
    await until(() => second.recentErrors.some((e) => /refused/.test(e)));
    expect(second.current).toBeNull();
    expect(second.highestRevision).toBe(5);

    // The genuine next revision is taken.
    serving = await signed(6, new Date());
    await until(() => second.current?.content.manifest.revision === 6, 10_000);
  });

  it("refuses to enforce a bundle older than the maximum age until the control plane confirms it", async () => {
    const dir = await dataDir();
    let clock = Date.now();
    const now = () => clock;
    serving = await signed(1, new Date(clock));
    const a = sync(dir, { maxBundleAgeSeconds: 3600, now });
    await a.start();
    await until(() => a.current?.content.manifest.revision === 1);
    await a.stop();

    // Two hours later the control plane is unreachable: the bundle on disk is too old to enforce.
    clock += 2 * 3600_000;
    down = true;
    const b = sync(dir, { maxBundleAgeSeconds: 3600, now });
    await b.start();
    expect(b.held?.content.manifest.revision).toBe(1);
    expect(b.current).toBeNull();
    const metrics = (b as unknown as { o: { metrics: Metrics } }).o.metrics;
    expect(metrics.bundleStale).toBe(1);
    expect(await metrics.render(null)).toMatch(/^mandate_bundle_stale 1$/m);

    // The control plane answers again (304: the bundle held is its current one): enforcing resumes.
    down = false;
    await until(() => b.current !== null, 10_000);
    expect(metrics.bundleStale).toBe(0);

    // Confirmed bundles stay fresh while confirmations keep coming; an hour without one makes it stale again.
    down = true;
    await new Promise((r) => setTimeout(r, 150));
    clock += 3600_000 + 1000;
    expect(b.current).toBeNull();
  });

  it("a fresh bundle on disk is enforced while the control plane is down", async () => {
    const dir = await dataDir();
    serving = await signed(2, new Date());
    const a = sync(dir);
    await a.start();
    await until(() => a.current?.content.manifest.revision === 2);
    await a.stop();
    down = true;
    const b = sync(dir);
    await b.start();
    expect(b.current?.content.manifest.revision).toBe(2);
  });

  it("--max-bundle-age takes a bounded duration, 24h by default", () => {
    expect(durationSeconds("24h")).toBe(86_400);
    expect(durationSeconds("90m")).toBe(5400);
    expect(durationSeconds("600")).toBe(600);
    expect(durationSeconds("7d")).toBe(604_800);
    for (const bad of ["0", "30s", "31d", "1w", "-5m", "abc", ""]) expect(durationSeconds(bad)).toBeNull();
    const base = { MANDATE_CONTROL_PLANE_URL: "http://127.0.0.1:1", MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: [publicJwk] }), MANDATE_AGENT_KEY: "mda_x.y" };
    const def = loadConfig([], base);
    expect(def.ok && def.config.maxBundleAgeSeconds).toBe(86_400);
    const set = loadConfig(["--max-bundle-age", "2h"], base);
    expect(set.ok && set.config.maxBundleAgeSeconds).toBe(7200);
    const bad = loadConfig(["--max-bundle-age=forever"], base);
    expect(!bad.ok && bad.errors.join("\n")).toMatch(/MANDATE_MAX_BUNDLE_AGE \(--max-bundle-age\)/);
  });
});
