/**
 * Starts sandbox/upstream.ts (a real MCP server on the official SDK) as a child
 * process on a free port, for catalogue import tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

export interface Sandbox {
  /** Streamable HTTP endpoint: http://127.0.0.1:PORT/mcp */
  url: string;
  /** http://127.0.0.1:PORT */
  base: string;
  setDescription(name: string, text: string): Promise<void>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port"))));
    });
  });
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`sandbox ${url} answered ${res.status}: ${await res.text()}`);
}

export async function startSandbox(timeoutMs = 30_000): Promise<Sandbox> {
  const port = await freePort();
  const root = fileURLToPath(new URL("..", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "sandbox/upstream.ts"], {
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`sandbox did not start within ${timeoutMs} ms\nstdout: ${out}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (/listening/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sandbox exited early (code ${code}, signal ${signal})\nstderr: ${stderr}`));
    });
  });
  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout!.resume();

  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/mcp`,
    base,
    setDescription: (name, text) => post(`${base}/_sandbox/tools/${encodeURIComponent(name)}`, { description: text }),
    reset: () => post(`${base}/_sandbox/reset`, {}),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => {
          clearTimeout(t);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}
