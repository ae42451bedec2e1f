// Shared by the e2e runner and the benches: free ports, a fresh database,
// the production server started as a child whose pid is the server's.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";

export const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

export async function waitFor(url, ms = 60_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${url}`);
}

/**
 * A fresh database: a new PostgreSQL database beside DATABASE_URL (local
 * servers only) or an embedded PGlite directory. Returns the env to run with
 * and a cleanup function.
 */
export async function freshDatabase(label) {
  if (process.env.DATABASE_URL) {
    const url = new URL(process.env.DATABASE_URL);
    if (!["127.0.0.1", "localhost", "::1", "[::1]"].includes(url.hostname)) throw new Error("refusing to use a non-local database");
    const name = `mandate_${label}_${randomBytes(4).toString("hex")}`;
    const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    url.pathname = `/${name}`;
    return {
      name,
      env: { DATABASE_URL: url.toString() },
      cleanup: async () => {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
        await admin.end();
      },
    };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `mandate-${label}-`));
  return { name: dir, env: { MANDATE_DATA_DIR: dir }, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
}

/** Base environment for a throwaway control plane on `port`. */
export function appEnv(port, extra = {}) {
  const env = {
    ...process.env,
    NEXT_TELEMETRY_DISABLED: "1",
    NEXTAUTH_URL: `http://127.0.0.1:${port}`,
    NEXTAUTH_SECRET: randomBytes(32).toString("base64url"),
    MANDATE_KEK: randomBytes(32).toString("base64"),
    MANDATE_OWNER_EMAIL: "owner@mandate.test",
    MANDATE_OWNER_PASSWORD: randomBytes(12).toString("base64url"),
    // Its peers (sandbox upstream and authorization server) listen on loopback, which the egress guard refuses by default with DATABASE_URL.
    MANDATE_EGRESS_ALLOW: "loopback",
    ...extra,
  };
  if (!env.DATABASE_URL) delete env.DATABASE_URL;
  return env;
}

/** Starts `next start` (the built app) as a direct child, so killing it stops the server. */
export function startApp(port, env, stdio = ["ignore", "inherit", "inherit"]) {
  return spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", String(port), "-H", "127.0.0.1"], { env, stdio });
}

/** Signs in with e-mail and password and returns an owner API token (as the dashboard would). */
export async function ownerApiToken(base, email, password) {
  const jar = new Map();
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  let res = await fetch(`${base}/api/auth/csrf`);
  keep(res);
  const { csrfToken } = await res.json();
  res = await fetch(`${base}/api/auth/callback/credentials`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: cookie() },
    body: new URLSearchParams({ email, password, csrfToken, json: "true" }),
  });
  keep(res);
  res = await fetch(`${base}/api/v1/admin/tokens`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie: cookie(), origin: base },
    body: JSON.stringify({ name: `harness-${randomBytes(2).toString("hex")}`, role: "owner" }),
  });
  if (res.status !== 201) throw new Error(`could not create an API token: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}
