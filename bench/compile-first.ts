/**
 * The first compile + sign of a process, 1,000 tools / 2,000 policies (the snapshot of bench/decision.ts), without and
 * with the stored conversions (lib/bundles/compile.ts `ConversionStore`, kept in the database by lib/bundles/conversions.ts;
 * here in a file, its read timed as part of the compile). One run: a child process writes the store, then fresh child
 * processes compile alternately without it and with it (A B B A ...), each printing first / again / one policy changed.
 *
 *   node --import ./bench/no-server-only.mjs --import tsx bench/compile-first.ts   (ROUNDS=2 by default: A B B A)
 *
 * SAVES=1 (needs DATABASE_URL, a local server; creates the database mandate_bench_compile and drops it): the same
 * registry saved through the services in a fresh process (createServer, addTool, putScopeMapping, then 2,000
 * createPolicy, so the store is filled the way an admin's saves fill it, lib/policy/service.ts), then the first
 * publish (compile + sign + insert, lib/bundles/service.ts publishBundle) of the fleet in NEW processes, alternately
 * with MANDATE_COMPILE_STORE=0, with the store emptied first (as before saves filled it: a fleet's first compile found
 * nothing) and with the store the saves filled (A B C C B A); each publish runs in a transaction that is rolled back,
 * so every process meets the state the saves left. Also the time a save takes with and without storing its
 * conversions (blocks of policies on another fleet's server, interleaved), and the bundle hash of every run
 * (createdAt left out: it is the time of the publish).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres SAVES=1 node --conditions=react-server --import tsx bench/compile-first.ts
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
const saves = process.env.SAVES === "1";
const file = process.env.COMPILE_STORE_FILE ?? join(tmpdir(), `mandate-compile-store-${process.pid}.json`);

if (saves) {
  await (mode ? dbChild(mode) : dbParent());
} else if (mode) {
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

// ---------------------------------------------------------------- SAVES=1: the registry saved through the services

type DbRun = { mode: string; firstMs: number; againMs: number; hash: string; rowsBefore: number; rowsAfter: number; added: number; load: string };

async function benchDb() {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("SAVES=1 needs DATABASE_URL (a local PostgreSQL server)");
  const u = new URL(url);
  u.pathname = "/mandate_bench_compile";
  const { openDatabase } = await import("@/db/client");
  return { url, h: await openDatabase({ url: u.toString(), max: 4 }) };
}

async function dbParent() {
  const { default: postgres } = await import("postgres");
  const url = process.env.DATABASE_URL!;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe("drop database if exists mandate_bench_compile with (force)");
  await admin.unsafe("create database mandate_bench_compile");
  await admin.end();
  const kekHex = (await import("node:crypto")).randomBytes(32).toString("hex");
  const run = (m: string, env: Record<string, string> = {}) => {
    const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!], {
      env: { ...process.env, ...env, COMPILE_BENCH_CHILD: m, BENCH_KEK: kekHex },
      encoding: "utf8",
      maxBuffer: 1 << 26,
    });
    return JSON.parse(out.trim().split("\n").pop()!) as Record<string, unknown>;
  };
  try {
    console.log(`load average ${load()}`);
    const saved = run("save") as { policies: number; saveMs: number; perSaveMs: number; rows: number; mib: number; overhead: { on: number; off: number; n: number }; load: string };
    console.log(
      `saved ${saved.policies} policies through createPolicy in ${(saved.saveMs / 1000).toFixed(1)} s (${saved.perSaveMs.toFixed(1)} ms each); store: ${saved.rows} rows, ${saved.mib.toFixed(1)} MiB (load ${saved.load})`,
    );
    console.log(
      `one save, interleaved blocks on another fleet's server (${saved.overhead.n} each): ${saved.overhead.off.toFixed(1)} ms without storing, ${saved.overhead.on.toFixed(1)} ms with (+${(saved.overhead.on - saved.overhead.off).toFixed(1)} ms)`,
    );
    const rounds = Number(process.env.ROUNDS ?? 2);
    const results: DbRun[] = [];
    for (let r = 0; r < rounds; r++)
      for (const m of r % 2 ? ["store", "empty", "none"] : ["none", "empty", "store"]) {
        const x = run("publish", { MANDATE_COMPILE_STORE: m === "none" ? "0" : "1", BENCH_EMPTY_STORE: m === "empty" ? "1" : "0" }) as unknown as DbRun;
        // Emptied inside the publish's transaction: it started from no row.
        if (m === "empty") x.rowsBefore = 0;
        results.push({ ...x, mode: m });
        const label = { none: "without store (MANDATE_COMPILE_STORE=0)  ", empty: "store on, not filled by saves (before) ", store: "store filled by the saves (after)      " }[m];
        console.log(
          `${label}  first publish (compile + sign) ${x.firstMs.toFixed(0)} ms, again ${x.againMs.toFixed(0)} ms; store rows ${x.rowsBefore} -> ${x.rowsAfter} (${x.added} rows added by the publish); bundle ${x.hash.slice(0, 16)}  (load ${x.load})`,
        );
      }
    const same = new Set(results.map((x) => x.hash)).size === 1;
    console.log(`same bundle hash in every run: ${same}; load average ${load()}`);
    if (!same) process.exitCode = 1;
  } finally {
    const a = postgres(url, { max: 1, onnotice: () => {} });
    await a.unsafe("drop database if exists mandate_bench_compile with (force)");
    await a.end();
  }
}

async function dbChild(m: string) {
  const { h } = await benchDb();
  const { eq, sql } = await import("drizzle-orm");
  const { bundles, compileConversions, fleetServers, fleets, users } = await import("@/db/schema");
  const { actorForUser } = await import("@/lib/auth/actors");
  const kek = { id: "bench", key: Buffer.from(process.env.BENCH_KEK!, "hex") };
  const keys = async (db: typeof h.db, fleetId: string) =>
    new Set((await db.select({ k: compileConversions.key }).from(compileConversions).where(eq(compileConversions.fleetId, fleetId))).map((r) => r.k));
  const rowCount = async (db: typeof h.db, fleetId: string) =>
    Number(
      (
        await db
          .select({ n: sql<number>`count(*)` })
          .from(compileConversions)
          .where(eq(compileConversions.fleetId, fleetId))
      )[0]!.n,
    );
  try {
    if (m === "save") {
      const { newId } = await import("@/lib/ids");
      const { createTenant } = await import("@/lib/tenants/service");
      const { createServer } = await import("@/lib/servers/service");
      const { createServerInput } = await import("@/lib/servers/schemas");
      const { addTool } = await import("@/lib/catalog/service");
      const { putScopeMapping } = await import("@/lib/scopes/service");
      const { createPolicy } = await import("@/lib/policy/service");
      const { activeSigningKey } = await import("@/lib/bundles/signing");
      const { POLICIES, SERVERS, TOOLS_PER_SERVER, benchMapping, benchPolicy, benchTool } = await import("./snapshot");
      // Smaller registries for a quick check of the script only (the figures are for the defaults).
      const nPolicies = Number(process.env.BENCH_POLICIES ?? POLICIES);
      const nTools = Number(process.env.BENCH_TOOLS ?? TOOLS_PER_SERVER);
      const [user] = await h.db
        .insert(users)
        .values({ id: newId("user"), email: "bench@example.com", name: "bench", role: "owner" })
        .returning();
      const ctx = { db: h.db, actor: await actorForUser(h.db, user!) };
      const a = (await createTenant(ctx, { name: "Bench A" }))!;
      const b = (await createTenant(ctx, { name: "Bench B" }))!;
      const server = async (i: number | string) => {
        const s = (await createServer(
          ctx,
          createServerInput.parse({
            tenantId: a.id,
            tenantIds: [b.id],
            name: `server ${i}`,
            resourceUri: `https://mcp.bench.example/${i}`,
            upstreamUrl: "http://127.0.0.1:9/mcp",
            scopes: ["read", "write"],
          }),
        ))!;
        const names: string[] = [];
        for (let t = 0; t < nTools; t++) {
          const { name, risk, annotations, inputSchema } = benchTool(t);
          await addTool(ctx, s.id, { name, description: "", inputSchema, annotations, risk });
          names.push(name);
        }
        await putScopeMapping(ctx, s.id, { baseVersion: 0, mapping: benchMapping(names) });
        return s.id;
      };
      const serverIds: string[] = [];
      for (let i = 0; i < SERVERS; i++) serverIds.push(await server(i));
      const fleetId = newId("fleet");
      await h.db.insert(fleets).values({ id: fleetId, name: "bench" });
      await h.db.insert(fleetServers).values(serverIds.map((serverId) => ({ fleetId, serverId })));
      await activeSigningKey(h.db, kek);
      const save = (p: number, serverId: string, prefix = "") => {
        const { name, rule } = benchPolicy(p);
        return createPolicy(ctx, { tenantId: p % 3 ? a.id : b.id, serverId, name: `${prefix}${name}`, description: "", kind: "rule", rule, enabled: true });
      };
      const t0 = performance.now();
      for (let p = 0; p < nPolicies; p++) await save(p, serverIds[benchPolicy(p).serverIndex]!);
      const saveMs = performance.now() - t0;
      const rows = await rowCount(h.db, fleetId);
      const [{ bytes }] = (await h.db.execute(
        sql`select coalesce(sum(octet_length(key) + octet_length(value)), 0)::bigint as bytes from compile_conversions where fleet_id = ${fleetId}`,
      )) as unknown as [{ bytes: string }];
      // The cost of storing at save time: policies on a server of a second fleet (never compiled here), in blocks
      // saved alternately without and with the store; texts new to the process, as an admin's are.
      const other = await server("x");
      const fleet2 = newId("fleet");
      await h.db.insert(fleets).values({ id: fleet2, name: "bench 2" });
      await h.db.insert(fleetServers).values({ fleetId: fleet2, serverId: other });
      const spent = { on: 0, off: 0 };
      const BLOCK = 20;
      const BLOCKS = 10;
      for (let k = 0; k < BLOCKS; k++) {
        const on = k % 2 === 1;
        process.env.MANDATE_COMPILE_STORE = on ? "1" : "0";
        const t1 = performance.now();
        for (let j = 0; j < BLOCK; j++) await save(nPolicies + k * BLOCK + j, other, "extra ");
        spent[on ? "on" : "off"] += performance.now() - t1;
      }
      delete process.env.MANDATE_COMPILE_STORE;
      const n = (BLOCK * BLOCKS) / 2;
      console.log(
        JSON.stringify({ policies: nPolicies, saveMs, perSaveMs: saveMs / nPolicies, rows, mib: Number(bytes) / 1024 / 1024, overhead: { on: spent.on / n, off: spent.off / n, n }, load: load() }),
      );
      return;
    }
    // "publish": the first publish of the fleet in this process, then again; each in a transaction rolled back.
    const { publishBundle } = await import("@/lib/bundles/service");
    const { contentHash } = await import("@/lib/enforcement/bundle");
    const [user] = await h.db.select().from(users).where(eq(users.email, "bench@example.com"));
    const [fleet] = await h.db.select().from(fleets).where(eq(fleets.name, "bench"));
    const ctx = { db: h.db, actor: await actorForUser(h.db, user!) };
    class Rollback extends Error {}
    const rowsBefore = await rowCount(h.db, fleet!.id);
    const publish = async () => {
      let ms = 0;
      let hash = "";
      let rowsAfter = 0;
      let added = 0;
      await h.db
        .transaction(async (tx) => {
          // "Before": the store as it was when only compiles filled it (a fleet's first compile found nothing).
          if (process.env.BENCH_EMPTY_STORE === "1") await tx.delete(compileConversions).where(eq(compileConversions.fleetId, fleet!.id));
          const keysBefore = await keys(tx, fleet!.id);
          const t0 = performance.now();
          const r = await publishBundle({ ...ctx, db: tx }, fleet!.id, { note: "bench" }, kek);
          ms = performance.now() - t0;
          const [row] = await tx.select({ content: bundles.content }).from(bundles).where(eq(bundles.id, r.id));
          const content = row!.content as unknown as import("@/lib/enforcement/bundle").BundleContent;
          hash = contentHash({ ...content, manifest: { ...content.manifest, createdAt: "" } });
          rowsAfter = await rowCount(tx, fleet!.id);
          added = [...(await keys(tx, fleet!.id))].filter((k) => !keysBefore.has(k)).length;
          throw new Rollback();
        })
        .catch((err: unknown) => {
          if (!(err instanceof Rollback)) throw err;
        });
      return { ms, hash, rowsAfter, added };
    };
    const first = await publish();
    const again = await publish();
    if (first.hash !== again.hash) throw new Error("two publishes of one process differ");
    console.log(JSON.stringify({ mode: m, firstMs: first.ms, againMs: again.ms, hash: first.hash, rowsBefore, rowsAfter: first.rowsAfter, added: first.added, load: load() }));
  } finally {
    await h.close();
  }
}
