/**
 * Pieces the gateway benches share (bench/gateway.ts, bench/list.ts): an MCP
 * client session, a quantile, a child process that reports readiness over IPC,
 * and an enrolled agent started as a child process and waited for.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

/** The q-quantile of an ascending array (NaN when empty). */
export const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** An MCP client session to `url`, with a bearer token or none (a direct upstream). */
export async function connect(url: string, bearer: string | null): Promise<Client> {
  const client = new Client({ name: "bench", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), bearer ? { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } } : {}));
  return client;
}

/** Starts a Node script that sends one IPC message when it listens; resolves then, rejects if it exits first. */
export async function spawnReady(root: string, args: string[], what: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "ignore", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", () => reject(new Error(`${what} exited`)));
  });
  return child;
}

/**
 * Starts `agent/main.ts` as a child process (AGENT_NODE_ARGS prepended, e.g.
 * `--cpu-prof`), enrolled with `enrollmentToken`, pinned to `keys`, with `env` added, and waits
 * up to 60 s for its /readyz.
 */
export async function startBenchAgent(o: {
  root: string;
  controlPlaneUrl: string;
  enrollmentToken: string;
  keys: Record<string, object>;
  port: number;
  dataDir: string;
  name: string;
  env?: Record<string, string>;
}): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [
      ...(process.env.AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean),
      "--import",
      "tsx",
      "agent/main.ts",
      "--control-plane",
      o.controlPlaneUrl,
      "--enrollment-token",
      o.enrollmentToken,
      "--port",
      String(o.port),
      "--data-dir",
      o.dataDir,
      "--wait",
      "30",
      "--name",
      o.name,
    ],
    {
      cwd: o.root,
      env: { ...process.env, ...o.env, MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(o.keys).map(([kid, k]) => ({ ...k, kid })) }) },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const end = Date.now() + 60_000;
  for (;;) {
    if (
      await fetch(`http://127.0.0.1:${o.port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      return proc;
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill("SIGTERM");
      throw new Error("the agent did not become ready");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops a child process and waits for it to exit. */
export async function stop(proc: ChildProcess | null): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}
