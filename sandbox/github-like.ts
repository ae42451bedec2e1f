/**
 * A "GitHub-like" sandbox upstream MCP server (official SDK, Streamable HTTP)
 * for brokered per-user OAuth (issue 13): every request must carry the
 * calling user's own access token from the upstream's authorization server
 * (a JWT whose `aud` is this server's /mcp URL, verified with the AS's JWKS),
 * a session stays bound to the user who opened it, and each tool answers for
 * that user only (`whoami`, `list_repos`). It logs whose token (`sub`) it saw.
 *
 *   ISSUER=http://127.0.0.1:3200 JWKS_URI=http://127.0.0.1:3200/jwks PORT=3300 npx tsx sandbox/github-like.ts
 *
 * Test control endpoints (sandbox only, never in the product):
 *   GET  /_sandbox/log                    per /mcp request: JSON-RPC method, the bearer token as received,
 *                                          its verified `sub` (or null) and whether it was accepted
 *   POST /_sandbox/anonymous-listing      {"allow": true} lets tools/list (and initialize) through without a
 *                                          token, so an admin can import the catalogue; off by default
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";

export interface GithubLikeLogLine {
  at: number;
  /** The JSON-RPC method of a POST (first of a batch), else the HTTP method. */
  method: string;
  /** The bearer token as received (sandbox only: lets tests prove no client token ever arrives). */
  token: string | null;
  /** The verified token's subject, null when there was none or it failed. */
  sub: string | null;
  accepted: boolean;
  reason: string | null;
}

export interface GithubLike {
  /** http://127.0.0.1:PORT/mcp: the resource (audience) its tokens must name. */
  url: string;
  base: string;
  log(): GithubLikeLogLine[];
  allowAnonymousListing(allow: boolean): void;
  stop(): Promise<void>;
}

const REPOS: Record<string, string[]> = { alice: ["alice/dotfiles", "alice/website"], bob: ["bob/compiler"] };
const MAX_LOG = 10_000;

function buildServer(sub: string | null): McpServer {
  const server = new McpServer({ name: "github-like", version: "1.0.0" });
  const who = () => {
    if (!sub) throw new Error("this tool needs a user's token");
    return sub;
  };
  server.registerTool("whoami", { description: "The account the token belongs to.", inputSchema: {} }, async () => ({ content: [{ type: "text" as const, text: JSON.stringify({ login: who() }) }] }));
  server.registerTool("list_repos", { description: "List the repositories of the signed-in account.", inputSchema: {} }, async () => ({
    content: [{ type: "text" as const, text: JSON.stringify({ login: who(), repos: REPOS[who()] ?? [] }) }],
  }));
  return server;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1024 * 1024) throw new Error("body too large");
    chunks.push(c as Buffer);
  }
  const raw = Buffer.concat(chunks).toString("utf8");
  return raw ? JSON.parse(raw) : undefined;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

export async function startGithubLike(opts: { issuer: string; jwksUri: string; port?: number; host?: string }): Promise<GithubLike> {
  const host = opts.host ?? "127.0.0.1";
  const keys = createRemoteJWKSet(new URL(opts.jwksUri));
  const log: GithubLikeLogLine[] = [];
  const transports = new Map<string, { t: StreamableHTTPServerTransport; sub: string | null }>();
  let anonymousListing = false;
  let url = "";

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const u = new URL(req.url ?? "/", "http://sandbox");
    if (u.pathname === "/_sandbox/log" && req.method === "GET") return send(res, 200, { requests: log });
    if (u.pathname === "/_sandbox/anonymous-listing" && req.method === "POST") {
      anonymousListing = ((await readBody(req)) as { allow?: unknown } | undefined)?.allow === true;
      return send(res, 200, { ok: true, anonymousListing });
    }
    if (u.pathname !== "/mcp") return send(res, 404, { error: "not found" });
    const body = req.method === "POST" ? await readBody(req) : undefined;
    const first = (Array.isArray(body) ? body[0] : body) as { method?: unknown } | undefined;
    const method = typeof first?.method === "string" ? first.method : (req.method ?? "");
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const token = m?.[1] ?? null;
    let sub: string | null = null;
    let reason: string | null = null;
    if (token) {
      try {
        const { payload } = await jwtVerify(token, keys, { issuer: opts.issuer, audience: url });
        sub = typeof payload.sub === "string" ? payload.sub : null;
        if (!sub) reason = "token without sub";
      } catch (err) {
        reason = `invalid token (${err instanceof Error ? err.name : "error"})`;
      }
    } else reason = "no token";
    const anonymousOk = anonymousListing && !token && ["initialize", "notifications/initialized", "tools/list"].includes(method);
    const sessionId = req.headers["mcp-session-id"] as string | undefined;
    const session = sessionId ? transports.get(sessionId) : undefined;
    // A session belongs to the user who opened it: another user's token on it is refused.
    if (session && sub && session.sub !== sub) reason = "the session belongs to another user";
    const accepted = (sub !== null && reason === null) || anonymousOk;
    log.push({ at: Date.now(), method, token, sub, accepted, reason: accepted ? null : reason });
    if (log.length > MAX_LOG) log.shift();
    if (!accepted)
      return send(
        res,
        401,
        { jsonrpc: "2.0", error: { code: -32001, message: `a user's token is required: ${reason}` }, id: null },
        { "www-authenticate": `Bearer resource_metadata="${u.origin}/.well-known/oauth-protected-resource/mcp"` },
      );
    let transport = session?.t;
    if (!transport) {
      if (sessionId || req.method !== "POST" || !isInitializeRequest(body))
        return send(res, sessionId ? 404 : 400, { jsonrpc: "2.0", error: { code: -32000, message: sessionId ? "Unknown session" : "Initialize first" }, id: null });
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void transports.set(id, { t, sub }) });
      t.onclose = () => {
        if (t.sessionId) transports.delete(t.sessionId);
      };
      await buildServer(sub).connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : "error" });
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, host, () => resolve()));
  const base = `http://${host}:${(server.address() as AddressInfo).port}`;
  url = `${base}/mcp`;
  return {
    url,
    base,
    log: () => [...log],
    allowAnonymousListing: (allow) => void (anonymousListing = allow),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const { t } of transports.values()) void t.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const issuer = process.env.ISSUER;
  const jwksUri = process.env.JWKS_URI;
  if (!issuer || !jwksUri) {
    console.error("ISSUER and JWKS_URI are required");
    process.exit(1);
  }
  startGithubLike({ issuer, jwksUri, port: Number(process.env.PORT ?? 3300), host: process.env.HOST })
    .then((g) => console.log(`[sandbox] GitHub-like upstream at ${g.url} (tokens of ${issuer}, aud ${g.url})`))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
