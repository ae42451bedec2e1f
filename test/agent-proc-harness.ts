/**
 * Real peers for the data-plane agent tests: the control plane's agent API
 * route handlers behind a tiny node:http adapter (against the test
 * database), and a JWKS server plus signer standing in for an authorization
 * server's keys (the tokens are real ES256 JWTs checked by the real
 * TokenValidator).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { NextRequest } from "next/server";
import * as bundleRoute from "@/app/api/v1/agent/bundle/route";
import * as enrollRoute from "@/app/api/v1/agent/enroll/route";
import * as heartbeatRoute from "@/app/api/v1/agent/heartbeat/route";

type Handler = (req: NextRequest) => Promise<Response>;
const routes: Record<string, Handler> = {
  "POST /api/v1/agent/enroll": enrollRoute.POST,
  "GET /api/v1/agent/bundle": bundleRoute.GET,
  "POST /api/v1/agent/heartbeat": heartbeatRoute.POST,
};

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface Listening {
  url: string;
  close(): Promise<void>;
}

function listen(server: Server): Promise<Listening> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** The agent API of the control plane, served over real HTTP. */
export function startControlPlane(): Promise<Listening> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const route = routes[`${req.method} ${url.pathname}`];
      if (!route) return void res.writeHead(404).end();
      const ac = new AbortController();
      res.on("close", () => !res.writableFinished && ac.abort());
      const body = req.method === "GET" ? undefined : new Uint8Array(await readAll(req));
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const out = await route(new NextRequest(`http://127.0.0.1${req.url}`, { method: req.method, headers, body, signal: ac.signal }));
      const h: Record<string, string> = {};
      out.headers.forEach((v, k) => (h[k] = v));
      const buf = Buffer.from(await out.arrayBuffer());
      if (!res.destroyed) res.writeHead(out.status, h).end(buf);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  return listen(server);
}

export interface Issuer extends Listening {
  issuer: string;
  jwksUri: string;
  sign(claims: Record<string, unknown>, aud: string, expiresIn?: string): Promise<string>;
}

/** An issuer's signing key with its JWKS served over HTTP. */
export async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "test-key", alg: "ES256", use: "sig" };
  const server = createServer((req, res) => {
    if (req.url === "/jwks") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
    res.writeHead(404).end();
  });
  const l = await listen(server);
  return {
    ...l,
    // As the server registry stores it (normalized, with the trailing slash).
    issuer: `${l.url}/`,
    jwksUri: `${l.url}/jwks`,
    sign: (claims, aud, expiresIn = "10m") =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "ES256", kid: "test-key", typ: "at+jwt" })
        .setIssuer(`${l.url}/`)
        .setAudience(aud)
        .setIssuedAt()
        .setExpirationTime(expiresIn)
        .sign(privateKey),
  };
}
