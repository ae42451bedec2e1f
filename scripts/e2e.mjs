#!/usr/bin/env node
// Runs the Playwright suite against the production build: a fresh database
// (a new PostgreSQL database when DATABASE_URL is set, else embedded PGlite in
// a temp dir), the sandbox MCP upstream and `next start`, all on free ports.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function waitFor(url, ms = 60_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${url}`);
}

if (!existsSync(".next/BUILD_ID")) {
  console.error("No production build: run `npm run build` first (npm run test:e2e does).");
  process.exit(1);
}

const [appPort, sandboxPort] = [await freePort(), await freePort()];
const base = `http://127.0.0.1:${appPort}`;
const env = {
  ...process.env,
  NEXT_TELEMETRY_DISABLED: "1",
  NEXTAUTH_URL: base,
  NEXTAUTH_SECRET: randomBytes(32).toString("base64url"),
  MANDATE_KEK: randomBytes(32).toString("base64"),
  MANDATE_OWNER_EMAIL: "owner@e2e.test",
  MANDATE_OWNER_PASSWORD: randomBytes(12).toString("base64url"),
  E2E_BASE_URL: base,
  E2E_SANDBOX_URL: `http://127.0.0.1:${sandboxPort}`,
};

let dropDb = async () => {};
let dataDir;
if (process.env.DATABASE_URL) {
  const url = new URL(process.env.DATABASE_URL);
  if (!["127.0.0.1", "localhost", "::1", "[::1]"].includes(url.hostname)) throw new Error("refusing to run e2e against a non-local database");
  const name = `mandate_e2e_${randomBytes(4).toString("hex")}`;
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  url.pathname = `/${name}`;
  env.DATABASE_URL = url.toString();
  dropDb = async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  };
  console.log(`[e2e] PostgreSQL database ${name}`);
} else {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "mandate-e2e-"));
  env.MANDATE_DATA_DIR = dataDir;
  console.log(`[e2e] embedded PGlite in ${dataDir}`);
}

const children = [
  spawn(process.execPath, ["--import", "tsx", "sandbox/upstream.ts"], { env: { ...env, PORT: String(sandboxPort) }, stdio: ["ignore", "inherit", "inherit"] }),
  spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", String(appPort), "-H", "127.0.0.1"], { env, stdio: ["ignore", "inherit", "inherit"] }),
];
let code = 1;
try {
  const t0 = Date.now();
  await waitFor(`${env.E2E_SANDBOX_URL}/_sandbox/authorization-log`);
  await waitFor(`${base}/login`);
  console.log(`[e2e] cold start to first page: ${Date.now() - t0} ms`);
  const r = spawnSync(process.execPath, ["node_modules/@playwright/test/cli.js", "test", ...process.argv.slice(2)], { env, stdio: "inherit" });
  code = r.status ?? 1;
} finally {
  for (const c of children) c.kill("SIGTERM");
  await dropDb().catch((e) => console.error(`[e2e] could not drop the database: ${e.message}`));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
