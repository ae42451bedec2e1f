#!/usr/bin/env node
// Cold start to first page: `next start` on a fresh database until /login
// answers 200, on embedded PGlite (fresh and on an existing data dir) and, when
// DATABASE_URL is set, PostgreSQL. Needs a production build.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { appEnv, freePort, freshDatabase, startApp } from "../scripts/harness.mjs";

const runs = Number(process.env.RUNS ?? 3);

// `npm run bench` starts here: without a production build there is no cold start to time. Said plainly, and the
// other benches go on (a fresh checkout has no build; `npm run build` makes one).
if (!existsSync(new URL("../.next/BUILD_ID", import.meta.url))) {
  console.log("cold start: no production build (.next/BUILD_ID); run `npm run build` first to time it. Skipped.");
  process.exit(0);
}

async function once(dbEnv) {
  const port = await freePort();
  const t0 = performance.now();
  const child = startApp(port, appEnv(port, { DATABASE_URL: undefined, ...dbEnv }), ["ignore", "ignore", "inherit"]);
  let exited = false;
  child.once("exit", () => (exited = true));
  try {
    for (;;) {
      if (exited) throw new Error("the server exited before answering");
      try {
        if ((await fetch(`http://127.0.0.1:${port}/login`)).status === 200) return performance.now() - t0;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bench(label, setup) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const { env, cleanup } = await setup();
    try {
      times.push(await once(env));
    } finally {
      await cleanup();
    }
  }
  console.log(`${label.padEnd(12)} cold start to first page: median ${median(times).toFixed(0)} ms  (runs: ${times.map((t) => t.toFixed(0)).join(", ")})`);
}

const pglite = async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mandate-bench-"));
  return { env: { MANDATE_DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
};
await bench("PGlite", pglite);
{
  // A restart on an existing data directory (no initdb, migrations already applied).
  const warm = await pglite();
  await once(warm.env);
  await bench("PGlite warm", async () => ({ env: warm.env, cleanup: async () => {} }));
  await warm.cleanup();
}
if (process.env.DATABASE_URL) await bench("PostgreSQL", () => freshDatabase("bench"));
