/**
 * The first compile + sign of a process, 1,000 tools / 2,000 policies (the snapshot of bench/decision.ts), without and
 * with the stored conversions (lib/bundles/compile.ts `ConversionStore`, kept in the database by lib/bundles/conversions.ts;
 * here in a file, its read timed as part of the compile). One run: a child process writes the store, then fresh child
 * processes compile alternately without it and with it (A B B A ...), each printing first / again / one policy changed.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/compile-first.ts   (ROUNDS=2 by default: A B B A)
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { JWK } from "jose";
import { compileBundle, type ConversionStore } from "@/lib/bundles/compile";
import { signPayload } from "@/lib/bundles/signing";
import { contentHash } from "@/lib/enforcement/bundle";
import { snapshot } from "./snapshot";

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const mode = process.env.COMPILE_BENCH_CHILD;
const file = process.env.COMPILE_STORE_FILE ?? join(tmpdir(), `mandate-compile-store-${process.pid}.json`);

if (mode) {
  const snap = snapshot();
  const m = (revision: number) => ({ fleetId: "flt_bench", revision, parentRevision: revision - 1 || null, createdAt: "2026-12-06T00:00:00.000Z" });
  let t0 = performance.now();
  let store: (ConversionStore & { map: Map<string, string> }) | undefined;
  if (mode === "store" || mode === "fill") {
    const map = new Map<string, string>(mode === "store" ? Object.entries(JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : []);
    store = { map, get: (k) => map.get(k), set: (k, v) => void map.set(k, v) };
  }
  const first = compileBundle(snap, m(1), { store });
  const firstMs = performance.now() - t0;
  if (first.issues.length) throw new Error(`bench bundle has issues: ${first.issues[0]!.message}`);
  t0 = performance.now();
  compileBundle(snap, m(2), { store });
  const againMs = performance.now() - t0;
  const changedSnap = { ...snap, policies: snap.policies.map((p, i) => (i === 0 ? { ...p, cedar: `// changed\n${p.cedar}` } : p)) };
  t0 = performance.now();
  compileBundle(changedSnap, m(3), { store });
  const changedMs = performance.now() - t0;
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  t0 = performance.now();
  const sha256 = contentHash(first.content);
  await signPayload({ kid: "bench", privateKey, publicJwk: publicKey.export({ format: "jwk" }) as JWK }, { sha256, fleetId: "flt_bench", revision: 1 });
  const signMs = performance.now() - t0;
  if (mode === "fill") writeFileSync(file, JSON.stringify(Object.fromEntries(store!.map)));
  console.log(JSON.stringify({ mode, firstMs, againMs, changedMs, signMs, sha256, entries: store?.map.size ?? 0, load: load() }));
} else {
  const rounds = Number(process.env.ROUNDS ?? 2);
  const run = (m: string) => {
    const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!], { env: { ...process.env, COMPILE_BENCH_CHILD: m, COMPILE_STORE_FILE: file }, encoding: "utf8" });
    return JSON.parse(out.trim().split("\n").pop()!) as { mode: string; firstMs: number; againMs: number; changedMs: number; signMs: number; sha256: string; entries: number; load: string };
  };
  console.log(`load average ${load()}`);
  const fill = run("fill");
  console.log(`store written: ${fill.entries} entries, ${(readFileSync(file).length / 1024 / 1024).toFixed(1)} MiB`);
  const results: ReturnType<typeof run>[] = [];
  for (let r = 0; r < rounds; r++) for (const m of r % 2 ? ["store", "none"] : ["none", "store"]) results.push(run(m));
  for (const x of results)
    console.log(
      `${x.mode === "none" ? "without store" : "with store   "}  first ${x.firstMs.toFixed(0)} ms, again ${x.againMs.toFixed(0)} ms, one changed ${x.changedMs.toFixed(0)} ms; hash + sign ${x.signMs.toFixed(1)} ms; bundle ${x.sha256.slice(0, 16)}  (load ${x.load})`,
    );
  const same = new Set([fill, ...results].map((x) => x.sha256)).size === 1;
  console.log(`same bundle hash in every run: ${same}`);
  if (existsSync(file) && !process.env.COMPILE_STORE_FILE) rmSync(file);
  if (!same) process.exit(1);
}
