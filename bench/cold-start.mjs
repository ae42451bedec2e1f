#!/usr/bin/env node
// Cold start to first page: `next start` on a fresh database until /login
// answers 200, on embedded PGlite and (when DATABASE_URL is set) PostgreSQL.
// Prints one line per run and the median. Needs a production build.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";

const runs = Number(process.env.RUNS ?? 3);
const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); }); });

async function once(extraEnv) {
  const port = await freePort();
  const env = { ...process.env, ...extraEnv, NEXTAUTH_URL: `http://127.0.0.1:${port}`, NEXTAUTH_SECRET: randomBytes(32).toString("hex"), MANDATE_KEK: randomBytes(32).toString("base64"), MANDATE_OWNER_EMAIL: "bench@mandate.local", MANDATE_OWNER_PASSWORD: "bench-password-1234" };
  const t0 = performance.now();
  if (!env.DATABASE_URL) delete env.DATABASE_URL;
  const child = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", String(port), "-H", "127.0.0.1"], { env, stdio: ["ignore", "ignore", "inherit"] });
  let exited = false;
  child.once("exit", () => (exited = true));
  try {
    for (;;) {
      if (exited) throw new Error("the server exited before answering");
      try {
        const r = await fetch(`http://127.0.0.1:${port}/login`);
        if (r.status === 200) return performance.now() - t0;
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

await bench("PGlite", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mandate-bench-"));
  return { env: { DATABASE_URL: undefined, MANDATE_DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
});

{
  // A restart on an existing data directory (no initdb, migrations already applied).
  const dir = mkdtempSync(path.join(os.tmpdir(), "mandate-bench-"));
  await once({ DATABASE_URL: undefined, MANDATE_DATA_DIR: dir });
  await bench("PGlite warm", async () => ({ env: { DATABASE_URL: undefined, MANDATE_DATA_DIR: dir }, cleanup: async () => {} }));
  rmSync(dir, { recursive: true, force: true });
}

if (process.env.DATABASE_URL) {
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await bench("PostgreSQL", async () => {
    const name = `mandate_bench_${randomBytes(4).toString("hex")}`;
    await admin.unsafe(`create database ${name}`);
    const url = new URL(process.env.DATABASE_URL);
    url.pathname = `/${name}`;
    return { env: { DATABASE_URL: url.toString() }, cleanup: () => admin.unsafe(`drop database ${name} with (force)`) };
  });
  await admin.end();
}
