#!/usr/bin/env node
// Starts Mandate on this machine: builds once if needed, starts the sample
// upstream MCP server (for the demo) and the control plane. With no
// DATABASE_URL the control plane uses embedded PGlite in .data/.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const port = process.env.PORT ?? "3000";
const host = process.env.HOST ?? "127.0.0.1";
const env = { ...process.env, NEXTAUTH_URL: process.env.NEXTAUTH_URL ?? `http://localhost:${port}`, NEXT_TELEMETRY_DISABLED: "1" };

if (!existsSync(".next/BUILD_ID")) {
  console.log("[mandate] first start: building the dashboard (about a minute)…");
  const b = spawnSync(process.execPath, ["node_modules/next/dist/bin/next", "build"], { stdio: "inherit", env });
  if (b.status !== 0) process.exit(b.status ?? 1);
}

const children = [];
if (process.env.MANDATE_SANDBOX !== "0") {
  const sandboxPort = process.env.SANDBOX_PORT ?? "3100";
  children.push(spawn(process.execPath, ["--import", "tsx", "sandbox/upstream.ts"], { stdio: "inherit", env: { ...env, PORT: sandboxPort } }));
}
const server = spawn(process.execPath, ["node_modules/next/dist/bin/next", "start", "-p", port, "-H", host], { stdio: "inherit", env });
children.push(server);

console.log(
  `\n  Mandate is starting at ${env.NEXTAUTH_URL}\n  Database: ${process.env.DATABASE_URL ? "PostgreSQL (DATABASE_URL)" : "embedded PGlite in .data/"}\n` +
    `  Sign in with MANDATE_OWNER_EMAIL / MANDATE_OWNER_PASSWORD if you set them; otherwise the first start prints\n` +
    `  a one-time password for owner@mandate.local below.\n` +
    (process.env.MANDATE_SANDBOX !== "0" ? `  Sample MCP upstream for the demo: http://127.0.0.1:${process.env.SANDBOX_PORT ?? "3100"}/mcp\n` : ""),
);

const stop = () => children.forEach((c) => c.kill("SIGTERM"));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
server.on("exit", (code) => {
  stop();
  process.exit(code ?? 0);
});
