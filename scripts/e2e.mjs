#!/usr/bin/env node
// Runs the Playwright suite against the production build: a fresh database
// (a new PostgreSQL database when DATABASE_URL is set, else embedded PGlite in
// a temp dir), the sandbox MCP upstream and `next start`, all on free ports.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { appEnv, freePort, freshDatabase, startApp, waitFor } from "./harness.mjs";

if (!existsSync(".next/BUILD_ID")) {
  console.error("No production build: run `npm run build` first (npm run test:e2e does).");
  process.exit(1);
}

const [appPort, sandboxPort, asPort] = [await freePort(), await freePort(), await freePort()];
const db = await freshDatabase("e2e");
console.log(`[e2e] database ${db.name}`);
// The sandbox authorization server doubles as the dashboard's SSO provider (admin sign-in over OIDC).
const sso = { issuer: `http://127.0.0.1:${asPort}`, clientId: "mandate-dashboard", clientSecret: randomBytes(24).toString("base64url") };
const env = appEnv(appPort, {
  ...db.env,
  MANDATE_OWNER_EMAIL: "owner@e2e.test",
  E2E_SANDBOX_URL: `http://127.0.0.1:${sandboxPort}`,
  OIDC_ISSUER: sso.issuer,
  OIDC_CLIENT_ID: sso.clientId,
  OIDC_CLIENT_SECRET: sso.clientSecret,
  OIDC_NAME: "Sandbox SSO",
});
env.E2E_BASE_URL = env.NEXTAUTH_URL;
const ssoClients = [
  {
    client_id: sso.clientId,
    client_secret: sso.clientSecret,
    redirect_uris: [`${env.NEXTAUTH_URL}/api/auth/callback/oidc`],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  },
];

const children = [
  spawn(process.execPath, ["--import", "tsx", "sandbox/upstream.ts"], { env: { ...env, PORT: String(sandboxPort) }, stdio: ["ignore", "inherit", "inherit"] }),
  spawn(process.execPath, ["--import", "tsx", "sandbox/auth-server.ts"], {
    env: { ...env, PORT: String(asPort), RESOURCES: "{}", CLIENTS: JSON.stringify(ssoClients) },
    stdio: ["ignore", "inherit", "inherit"],
  }),
  startApp(appPort, env),
];
let code = 1;
try {
  const t0 = Date.now();
  await waitFor(`${env.E2E_SANDBOX_URL}/_sandbox/authorization-log`);
  await waitFor(`${sso.issuer}/.well-known/openid-configuration`);
  await waitFor(`${env.E2E_BASE_URL}/login`);
  console.log(`[e2e] cold start to first page: ${Date.now() - t0} ms`);
  const r = spawnSync(process.execPath, ["node_modules/@playwright/test/cli.js", "test", ...process.argv.slice(2)], { env, stdio: "inherit" });
  code = r.status ?? 1;
} finally {
  for (const c of children) c.kill("SIGTERM");
  await db.cleanup().catch((e) => console.error(`[e2e] could not clean up the database: ${e.message}`));
}
process.exit(code);
