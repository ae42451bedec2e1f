import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { BundleServer } from "@/lib/enforcement/bundle";
import { protectedResourceMetadataUrl, resourcePath } from "@/lib/enforcement/resource-uri";
import type { Installed } from "./bundle-sync";
import type { Metrics } from "./metrics";
import { InsufficientScope, MAX_BODY_BYTES, McpProxy, sendJson } from "./proxy";
import type { Principal, TokenValidatorLike } from "./token";
import { isRevoked } from "./live-index";
import { UpstreamRevoker } from "./upstream-revocation";
import type { CredentialBroker } from "./credentials";
import type { DecisionWal } from "./wal";

export interface AgentServerDeps {
  /** The bundle in force, or null. Read once per request. */
  current: () => Installed | null;
  validator: TokenValidatorLike;
  metrics: Metrics;
  wal: DecisionWal;
  agentId: () => string | null;
  log?: (msg: string) => void;
  /** Upstream credentials from the vault (agent/credentials.ts). */
  credentials?: CredentialBroker;
  /** Sends RFC 7009 revocations for refused revoked tokens (default: one of its own). */
  revoker?: UpstreamRevoker;
}

const MAX_SESSIONS = 100_000;
const WELL_KNOWN = "/.well-known/oauth-protected-resource";

/** RFC 6750 §3 auth-param value: a quoted string (quotes and backslashes escaped, no line breaks). */
const q = (v: string) => `"${v.replace(/[\r\n]+/g, " ").replace(/[\\"]/g, (c) => `\\${c}`)}"`;

/** 401 challenge per the MCP authorization spec: resource_metadata and scope; error only when a token was sent. */
export function challenge401(server: BundleServer, error?: { code: string; description: string }): string {
  const parts = [`resource_metadata=${q(protectedResourceMetadataUrl(server.resourceUri))}`];
  if (server.scopes.length) parts.push(`scope=${q(server.scopes.join(" "))}`);
  if (error) parts.push(`error=${q(error.code)}`, `error_description=${q(error.description)}`);
  return `Bearer ${parts.join(", ")}`;
}

/** 403 step-up challenge: every scope that would grant the tool. */
export function challenge403(server: BundleServer, scopes: string[]): string {
  return `Bearer error="insufficient_scope", scope=${q(scopes.join(" "))}, resource_metadata=${q(protectedResourceMetadataUrl(server.resourceUri))}`;
}

/** The server whose metadata the root well-known URL serves: the only one, or the one at path "/". */
function rootServer(servers: BundleServer[]): BundleServer | undefined {
  if (servers.length === 1) return servers[0];
  return servers.find((s) => resourcePath(s.resourceUri) === "/");
}

/** Whether an Origin header names the origin of the resource URI (scheme, host and port). */
function sameOrigin(origin: string, resourceUri: string): boolean {
  try {
    return new URL(origin).origin === new URL(resourceUri).origin;
  } catch {
    return false;
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer | "too_large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) return "too_large";
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * The agent's HTTP surface: health, readiness, metrics, RFC 9728 metadata
 * and, at each server's resource path, the authenticated MCP proxy. Without
 * a verified bundle every MCP request answers 503 (fail closed).
 */
export function createAgentServer(deps: AgentServerDeps): Server {
  const log = deps.log ?? ((m: string) => console.log(`[agent] ${m}`));
  const proxy = new McpProxy({ metrics: deps.metrics, wal: deps.wal, agentId: deps.agentId, log, credentials: deps.credentials });
  const revoker = deps.revoker ?? new UpstreamRevoker({ metrics: deps.metrics, log });
  /** Upstream session id → the principal that opened it: a session is never usable by another caller. */
  const sessions = new Map<string, string>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://agent");
    const p = url.pathname;
    const installed = deps.current();
    if (p === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (p === "/readyz") return sendJson(res, installed ? 200 : 503, installed ? { status: "ready", bundleRevision: installed.content.manifest.revision } : { status: "no verified bundle" });
    if (p === "/metrics") {
      const text = deps.metrics.render(installed ? { revision: installed.content.manifest.revision, installedAt: installed.installedAt } : null);
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(text);
      return;
    }
    if (p === WELL_KNOWN || p.startsWith(`${WELL_KNOWN}/`)) {
      if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: "method not allowed" }, { allow: "GET" });
      if (!installed) return sendJson(res, 503, { error: "no verified bundle" }, { "retry-after": "5" });
      const servers = installed.content.servers;
      const server = p === WELL_KNOWN ? rootServer(servers) : servers.find((s) => new URL(protectedResourceMetadataUrl(s.resourceUri)).pathname === p);
      if (!server) return sendJson(res, 404, { error: "no protected resource here" });
      return sendJson(res, 200, { ...server.prm, resource: server.resourceUri }, { "cache-control": "max-age=300", "access-control-allow-origin": "*" });
    }
    if (!installed) {
      // Fail closed: with no verified bundle nothing is served, whatever the path.
      return sendJson(res, 503, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Service unavailable: no verified policy bundle" } }, { "retry-after": "5" });
    }
    const server = installed.content.servers.find((s) => resourcePath(s.resourceUri) === p);
    if (!server) return sendJson(res, 404, { error: "not found" });
    if (!["POST", "GET", "DELETE"].includes(req.method ?? "")) return sendJson(res, 405, { error: "method not allowed" }, { allow: "POST, GET, DELETE" });
    // MCP transports (2025-11-25): validate Origin against DNS rebinding; present and invalid → 403.
    // The MCP endpoint sends no CORS headers, so no cross-origin browser client can use it anyway.
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, server.resourceUri)) {
      return sendJson(res, 403, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Forbidden: invalid Origin" } });
    }

    const unauthorized = (error?: { code: string; description: string }) => {
      res.setHeader("www-authenticate", challenge401(server, error));
      return sendJson(res, 401, { error: error?.code ?? "unauthorized", error_description: error?.description ?? "a bearer token is required" });
    };
    // Tokens in the query string are never accepted (MCP authorization: header only).
    if (url.searchParams.has("access_token")) return unauthorized({ code: "invalid_request", description: "tokens in the query string are not accepted; send Authorization: Bearer" });
    const header = req.headers.authorization;
    if (!header) return unauthorized();
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
    if (!m) return unauthorized({ code: "invalid_token", description: "the Authorization header is not a bearer token" });
    const check = await deps.validator.validate(m[1]!, server);
    if (!check.ok) return unauthorized({ code: "invalid_token", description: check.description });
    const principal: Principal = check.principal;
    if (isRevoked(installed.content, principal, server.id)) {
      void revoker.revoke(m[1]!, principal, server);
      return unauthorized({ code: "invalid_token", description: "the grant behind this token was revoked" });
    }

    const who = `${principal.issuer}\u0000${principal.tenantId}\u0000${principal.user}\u0000${principal.client}`;
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string" && sessions.has(sessionId) && sessions.get(sessionId) !== who) {
      return sendJson(res, 404, { jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } });
    }
    res.on("finish", () => {
      const created = res.getHeader("mcp-session-id");
      if (typeof created === "string" && !sessions.has(created)) {
        sessions.set(created, who);
        if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
      }
      if (req.method === "DELETE" && typeof sessionId === "string" && res.statusCode < 300) sessions.delete(sessionId);
    });

    let body: Buffer | null = null;
    if (req.method === "POST") {
      const b = await readBody(req);
      if (b === "too_large") return sendJson(res, 413, { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Request too large" } });
      body = b;
    }
    try {
      await proxy.handle(req, res, installed, server, principal, body);
    } catch (err) {
      if (err instanceof InsufficientScope) {
        res.setHeader("www-authenticate", challenge403(server, err.scopes));
        return sendJson(res, 403, { error: "insufficient_scope", scope: err.scopes.join(" ") });
      }
      throw err;
    }
  }

  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) sendJson(res, 500, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Internal error" } });
      else res.end();
    });
  });
}
