/**
 * The control plane's agent API (enroll, bundle, heartbeat and decision
 * ingestion route handlers) over node:http against the test database, for
 * the decision-shipping tests: it can be stopped and restarted on the same
 * port, and it records the headers of every decision batch it received.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { NextRequest } from "next/server";
import * as bundleRoute from "@/app/api/v1/agent/bundle/route";
import * as decisionsRoute from "@/app/api/v1/agent/decisions/route";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as heartbeatRoute from "@/app/api/v1/agent/heartbeat/route";

type Handler = (req: NextRequest) => Promise<Response>;
const routes: Record<string, Handler> = {
  "POST /api/v1/agent/enroll": enrollRoute.POST,
  "GET /api/v1/agent/bundle": bundleRoute.GET,
  "POST /api/v1/agent/heartbeat": heartbeatRoute.POST,
  "POST /api/v1/agent/decisions": decisionsRoute.POST,
};

export interface DecisionPost {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  answer: string;
}

export interface ShipControlPlane {
  url: string;
  port: number;
  /** Every POST /api/v1/agent/decisions received, in order. */
  posts: DecisionPost[];
  close(): Promise<void>;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Serves the agent API on `port` (0: any free port). */
export function startShipControlPlane(port = 0): Promise<ShipControlPlane> {
  const posts: DecisionPost[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const route = routes[`${req.method} ${url.pathname}`];
      if (!route) return void res.writeHead(404).end();
      const ac = new AbortController();
      res.on("close", () => !res.writableFinished && ac.abort());
      const raw = req.method === "GET" ? undefined : await readAll(req);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const out = await route(new NextRequest(`http://127.0.0.1${req.url}`, { method: req.method, headers, body: raw ? new Uint8Array(raw) : undefined, signal: ac.signal }));
      const h: Record<string, string> = {};
      out.headers.forEach((v, k) => (h[k] = v));
      const buf = Buffer.from(await out.arrayBuffer());
      if (url.pathname === "/api/v1/agent/decisions") posts.push({ status: out.status, headers: { ...req.headers }, bytes: raw?.length ?? 0, answer: buf.toString("utf8").slice(0, 2000) });
      if (!res.destroyed) res.writeHead(out.status, h).end(buf);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const { port: bound } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${bound}`,
        port: bound,
        posts,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
