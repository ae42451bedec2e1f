import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { BundleServer } from "@/lib/enforcement/bundle";
import { protectedResourceMetadataUrl, resourcePath } from "@/lib/enforcement/resource-uri";
import type { Installed } from "./bundle-sync";
import type { Metrics } from "./metrics";
import { InsufficientScope, McpProxy, sendJson, viewOf, type Call } from "./proxy";
import { MAX_BODY_BYTES, MAX_EVENT_ID_CHARS } from "./bounds";
import { VerifiedTokens, type Principal, type TokenValidatorLike } from "./token";
import { decide } from "@/lib/enforcement/decide";
import { driftOf } from "./drift";
import { UpstreamRevoker } from "./upstream-revocation";
import type { CredentialBroker } from "./credentials";
import type { DecisionWal } from "./wal";
import { RequestTracker, SessionBinder } from "./session";
import { isModernVersion, readMcpHeaders } from "./protocol";
import { challenges, checkSender, DpopNonces, DpopVerifier, readCredentials, stepUpChallenge } from "@/lib/enforcement/dpop";
import type { AgentTracing } from "./tracing";
import { GateLog, type GateCode, type GateLogOptions } from "./gate-log";
import type { UpstreamPools } from "./upstream";

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
  /** Key binding session ids to callers (agent/session.ts: loadSessionKey); replicas behind one address share it. */
  sessionKey: Buffer;
  /**
   * The origins (scheme://host[:port]) clients reach this agent at, when a
   * proxy in front changes the Host header or terminates TLS. Empty: the
   * Host header names the origin (any scheme).
   */
  publicOrigins?: string[];
  /** Until when (ms) the bundle in force may be enforced (agent/bundle-sync.ts); cache lifetimes given to clients stop there. Default: unbounded (MAX_CACHE_TTL_MS still applies). */
  freshUntil?: () => number;
  /** DPoP proof checks and their jti replay cache (lib/enforcement/dpop.ts; default: one of its own). */
  dpop?: DpopVerifier;
  /** The DPoP nonces of servers with `dpopNonce` (lib/enforcement/dpop.ts; default: a key of its own, random per process). */
  dpopNonces?: DpopNonces;
  /** OpenTelemetry traces of MCP requests (agent/tracing.ts), when an OTLP endpoint is configured. */
  tracing?: AgentTracing;
  /** Window and key bound of the gate's refusal records (agent/gate-log.ts; defaults GATE_WINDOW_MS, GATE_MAX_KEYS). */
  gate?: GateLogOptions;
  /** Upstream connection pools under the agent's egress policy (agent/upstream.ts; default: loopback and public addresses). */
  upstreams?: UpstreamPools;
}

const WELL_KNOWN = "/.well-known/oauth-protected-resource";
/** All request headers together (Node answers 431 past it). */
const MAX_HEADER_BYTES = 16 * 1024;
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Longest Host header considered (a DNS name is at most 253 characters, plus a port). */
const MAX_HOST_CHARS = 260;
const HOST = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;
const PROTOCOL_VERSION = /^\d{4}-\d{2}-\d{2}$/;
/** A protocol version that is not a date but may be named back in an UnsupportedProtocolVersionError. */
const VERSION_TOKEN = /^[\x21-\x7e]{1,64}$/;
const VISIBLE_ASCII = /^[\x21-\x7e]*$/;

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

/** Whether an Origin header names the origin of the resource URI (scheme, host and port). */
function sameOrigin(origin: string, resourceUri: string): boolean {
  try {
    return new URL(origin).origin === new URL(resourceUri).origin;
  } catch {
    return false;
  }
}

/** Where a request arrived: the origin when known (public origins), else the host[:port] of its Host header. */
type Arrival = { origin: string } | { host: string } | null;

/** The host of a URL as the Host header would carry it for that scheme: both with and without the default port. */
function hostForms(u: URL): string[] {
  if (u.port) return [u.host];
  return [u.host, `${u.host}:${u.protocol === "https:" ? 443 : 80}`];
}

/**
 * Resolves the address a request was made to. The Host header is the only
 * source (X-Forwarded-Host and the like are never trusted); with public
 * origins configured, the one whose host the header names, or the only
 * one when there is one (a proxy that rewrites Host).
 */
function arrival(req: IncomingMessage, publicOrigins: URL[]): Arrival {
  const raw = req.headers.host;
  const host = typeof raw === "string" && raw.length <= MAX_HOST_CHARS && HOST.test(raw.toLowerCase()) ? raw.toLowerCase().replace(/\.(?=:|$)/, "") : null;
  if (publicOrigins.length) {
    const named = host ? publicOrigins.find((o) => hostForms(o).includes(host)) : undefined;
    if (named) return { origin: named.origin };
    return publicOrigins.length === 1 ? { origin: publicOrigins[0]!.origin } : null;
  }
  return host ? { host } : null;
}

/** Whether a resource URI is served at the address a request arrived at. */
function servedAt(resourceUri: string, at: Arrival): boolean {
  if (!at) return false;
  const u = new URL(resourceUri);
  return "origin" in at ? u.origin === at.origin : hostForms(u).includes(at.host);
}

/** Whether the header appears more than once in the raw request (Node keeps only the first Authorization). */
function repeated(req: IncomingMessage, name: string): boolean {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name && ++n > 1) return true;
  return false;
}

/** `MANDATE_CPU_FAST=0`: the request path as before issue 12's eighth round (URL parsed per request, body read by async iteration; for bench/gateway.ts). */
const CPU_FAST = process.env.MANDATE_CPU_FAST !== "0";

/** The headers the gate requires at most once (see `repeated`). */
const SINGLE_HEADERS = new Set(["host", "authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id", "content-type", "accept"]);
const NONE: ReadonlySet<string> = new Set();

/** Which of SINGLE_HEADERS appear more than once in the raw request: one pass instead of one per header. */
export function repeatedSingles(req: Pick<IncomingMessage, "rawHeaders">): ReadonlySet<string> {
  let seen: Set<string> | null = null;
  let twice: Set<string> | null = null;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!SINGLE_HEADERS.has(name)) continue;
    seen ??= new Set();
    if (seen.has(name)) (twice ??= new Set()).add(name);
    else seen.add(name);
  }
  return twice ?? NONE;
}

async function readBodyIterating(req: IncomingMessage): Promise<Buffer | "too_large"> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return "too_large";
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
 * The request body, at most MAX_BODY_BYTES ("too_large" past it, as soon as
 * it is known): one `read()` when the parser has the whole message already,
 * else 'data'/'end' listeners: no async iterator (its promise and stream
 * machinery per chunk) on every call. An error or an abort of the request
 * rejects, as the iterator did.
 */
export function readBody(req: IncomingMessage): Promise<Buffer | "too_large"> {
  if (!CPU_FAST) return readBodyIterating(req);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return Promise.resolve("too_large");
  // Parsed whole already (the usual case: the body came with its headers): taken with one read, no listeners.
  if (req.complete && !req.readableEnded && !req.readableFlowing) {
    if (req.readableLength > MAX_BODY_BYTES) return Promise.resolve("too_large");
    const b = req.read() as Buffer | null;
    return Promise.resolve(b ?? Buffer.alloc(0));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        done();
        // Nothing more is read: the caller answers 413 with Connection: close.
        req.pause();
        resolve("too_large");
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      done();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    // Closed before its end (the client went away): what the iterator reported as a premature close.
    const onClose = () => {
      done();
      reject(Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" }));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Most request targets whose parse is remembered (a client's calls repeat one path); past it the memo starts over. */
const MAX_REMEMBERED_TARGETS = 256;
const targets = new Map<string, { pathname: string; accessToken: boolean }>();

/** The path of a request target and whether its query names access_token: WHATWG URL parsing, remembered per exact target string (a pure function of it). */
export function requestTarget(raw: string): { pathname: string; accessToken: boolean } {
  let t = CPU_FAST ? targets.get(raw) : undefined;
  if (t) return t;
  const url = new URL(raw, "http://agent");
  t = { pathname: url.pathname, accessToken: url.searchParams.has("access_token") };
  if (CPU_FAST && raw.length <= 2048) {
    if (targets.size >= MAX_REMEMBERED_TARGETS) targets.clear();
    targets.set(raw, t);
  }
  return t;
}

/** Where a served resource URI lives, parsed once per server object (a bundle's servers are immutable; a new bundle, new objects). */
interface Route {
  uri: string;
  path: string;
  origin: string;
  hosts: string[];
}
const routes = new WeakMap<BundleServer, Route>();
function routeOf(s: BundleServer): Route {
  let r = CPU_FAST ? routes.get(s) : undefined;
  if (r && r.uri === s.resourceUri) return r;
  const u = new URL(s.resourceUri);
  r = { uri: s.resourceUri, path: resourcePath(s.resourceUri), origin: u.origin, hosts: hostForms(u) };
  if (CPU_FAST) routes.set(s, r);
  return r;
}

/** Whether a bundle server's resource URI is served at the address a request arrived at (the same answer as servedAt). */
function serverAt(s: BundleServer, at: Arrival): boolean {
  if (!CPU_FAST) return servedAt(s.resourceUri, at);
  if (!at) return false;
  const r = routeOf(s);
  return "origin" in at ? r.origin === at.origin : r.hosts.includes(at.host);
}

/**
 * The agent's HTTP surface: health, readiness, metrics, RFC 9728 metadata
 * and, at each server's resource URI (host and path), the authenticated MCP
 * proxy. Without a verified bundle every MCP request answers 503 (fail closed).
 */
export function createAgentServer(deps: AgentServerDeps): Server {
  const log = deps.log ?? ((m: string) => console.log(`[agent] ${m}`));
  const tracker = new RequestTracker();
  const proxy = new McpProxy({ metrics: deps.metrics, wal: deps.wal, agentId: deps.agentId, log, credentials: deps.credentials, tracker, upstreams: deps.upstreams });
  const revoker = deps.revoker ?? new UpstreamRevoker({ metrics: deps.metrics, log });
  const binder = new SessionBinder(deps.sessionKey);
  // Verified tokens, dropped with every bundle change; revocation and policy are still decided on every request below.
  const tokens = new VerifiedTokens(deps.validator);
  const dpop = deps.dpop ?? new DpopVerifier();
  const nonces = deps.dpopNonces ?? new DpopNonces();
  // Every refusal at the gate has its decision record (repeats counted per window: agent/gate-log.ts).
  const gateLog = new GateLog({ wal: deps.wal, metrics: deps.metrics, agentId: deps.agentId, log }, deps.gate);
  const publicOrigins = (deps.publicOrigins ?? []).map((o) => new URL(o));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestTarget(req.url ?? "/");
    const p = url.pathname;
    const installed = deps.current();
    if (p === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (p === "/readyz") return sendJson(res, installed ? 200 : 503, installed ? { status: "ready", bundleRevision: installed.content.manifest.revision } : { status: "no verified bundle" });
    if (p === "/metrics") {
      const text = await deps.metrics.render(installed ? { revision: installed.content.manifest.revision, installedAt: installed.installedAt } : null);
      res.writeHead(200, { "content-type": deps.metrics.contentType }).end(text);
      return;
    }
    const twice = CPU_FAST ? repeatedSingles(req) : null;
    const isRepeated = (name: string) => (twice ? twice.has(name) : repeated(req, name));
    // One Host: Node keeps the first of several, a proxy in front may have routed by another.
    if (isRepeated("host")) return sendJson(res, 400, { error: "exactly one Host header is accepted" });
    const at = arrival(req, publicOrigins);
    if (p === WELL_KNOWN || p.startsWith(`${WELL_KNOWN}/`)) {
      if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: "method not allowed" }, { allow: "GET" });
      if (!installed) return sendJson(res, 503, { error: "no verified bundle" }, { "retry-after": "5" });
      const here = installed.content.servers.filter((s) => serverAt(s, at));
      // The root well-known URL: the only server at this address, or the one at path "/".
      const server =
        p === WELL_KNOWN
          ? here.length === 1
            ? here[0]
            : here.find((s) => resourcePath(s.resourceUri) === "/")
          : here.find((s) => new URL(protectedResourceMetadataUrl(s.resourceUri)).pathname === p);
      if (!server) return sendJson(res, 404, { error: "no protected resource here" });
      return sendJson(res, 200, { ...server.prm, resource: server.resourceUri }, { "cache-control": "max-age=300", "access-control-allow-origin": "*" });
    }
    if (!installed) {
      // Fail closed: with no verified bundle nothing is served, whatever the path.
      return sendJson(res, 503, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Service unavailable: no verified policy bundle" } }, { "retry-after": "5" });
    }
    // Routed by the full resource URI: two servers at the same path on two hosts never meet.
    const server = installed.content.servers.find((s) => routeOf(s).path === p && serverAt(s, at));
    if (!server) return sendJson(res, 404, { error: "not found" });
    const trace = deps.tracing?.begin(req, res, server.id);
    if (!["POST", "GET", "DELETE"].includes(req.method ?? "")) return sendJson(res, 405, { error: "method not allowed" }, { allow: "POST, GET, DELETE" });
    // MCP transports (2025-11-25): validate Origin against DNS rebinding; present and invalid → 403.
    // The MCP endpoint sends no CORS headers, so no cross-origin browser client can use it anyway.
    const origin = req.headers.origin;
    /** The refusal's decision record, durable (or counted) before the answer; false (503 sent) when the log cannot take it. */
    const recorded = async (code: GateCode, description: string, principal?: Principal, determining?: string[]): Promise<boolean> => {
      try {
        await gateLog.refuse({ serverId: server.id, bundleRevision: installed.content.manifest.revision, code, description, remoteAddress: req.socket.remoteAddress, principal, determining });
        return true;
      } catch (err) {
        log(`decision log write failed; refusal answered 503: ${err instanceof Error ? err.message : String(err)}`);
        sendJson(res, 503, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Decision log unavailable" } }, { "retry-after": "1" });
        return false;
      }
    };
    if (origin !== undefined && !sameOrigin(origin, server.resourceUri)) {
      if (!(await recorded("invalid_origin", "the Origin header is not the server's origin"))) return;
      return sendJson(res, 403, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Forbidden: invalid Origin" } });
    }

    let usedDpop = false;
    const unauthorized = async (code: GateCode, error?: { code: string; description: string }, principal?: Principal, determining?: string[]) => {
      if (!(await recorded(code, error?.description ?? "no access token was sent", principal, determining))) return;
      // RFC 9449 §9: the nonce to retry with.
      if (code === "use_dpop_nonce") res.setHeader("dpop-nonce", nonces.issue(server.resourceUri));
      res.setHeader(
        "www-authenticate",
        challenges(server, (e) => challenge401(server, e), error, usedDpop),
      );
      return sendJson(res, 401, { error: error?.code ?? "unauthorized", error_description: error?.description ?? "a bearer token is required" });
    };
    const badRequest = (message: string) => sendJson(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32600, message: `Invalid Request: ${message}` } });
    // Tokens in the query string are never accepted (MCP authorization: header only).
    if (url.accessToken) return unauthorized("invalid_request", { code: "invalid_request", description: "tokens in the query string are not accepted; send Authorization: Bearer" });
    // Two Authorization headers: Node would silently keep the first; which one a proxy in front saw is unknown.
    if (isRepeated("authorization")) return unauthorized("invalid_request", { code: "invalid_request", description: "exactly one Authorization header is accepted" });
    const header = req.headers.authorization;
    if (!header) return unauthorized("missing_token");
    // Bearer or DPoP (RFC 9449): the sender check runs on every request, after the (possibly cached) token check.
    const cred = readCredentials(header, req.rawHeaders);
    if (!cred.ok) return unauthorized(cred.error.code === "invalid_dpop_proof" ? "invalid_dpop_proof" : "invalid_token", cred.error);
    usedDpop = cred.credentials.scheme === "DPoP";
    const token = cred.credentials.token;
    const tokenStep = trace?.step("mandate.token");
    const check = await tokens.validate(token, server, installed);
    if (!check.ok) return unauthorized("invalid_token", { code: "invalid_token", description: check.description });
    const sender = await checkSender(dpop, server, cred.credentials, check.principal.jkt, req.method ?? "", nonces);
    // The token verified: the refusal is its caller's (a stolen token used without its key shows under the user).
    if (!sender.ok) return unauthorized(sender.error.code === "invalid_token" || sender.error.code === "invalid_request" ? "invalid_token" : sender.error.code, sender.error, check.principal);
    // A nonce of the previous window passed: the answer carries the current one (RFC 9449 §9, rotation).
    if (sender.staleNonce) res.setHeader("dpop-nonce", nonces.issue(server.resourceUri));
    const principal: Principal = check.principal;
    // The checks every request passes whatever it asks (revocation, the tenant's use of the server): decide() as for a ping.
    const gate = decide(viewOf(installed), { method: "ping", serverId: server.id, principal }, { drifted: driftOf(installed) });
    if (gate.decision === "deny") {
      if (gate.stage === "revoked") void revoker.revoke(token, principal, server);
      return unauthorized(gate.stage === "revoked" ? "revoked" : "invalid_token", { code: "invalid_token", description: gate.reason }, principal, gate.determining);
    }

    tokenStep?.end();
    trace?.tenant(principal.tenantId);

    // Transport headers the agent forwards: well-formed and bounded, or the request goes no further.
    for (const h of ["mcp-session-id", "mcp-protocol-version", "last-event-id", "content-type", "accept"]) if (isRepeated(h)) return badRequest(`repeated ${h} header`);
    const version = req.headers["mcp-protocol-version"];
    // A POST naming a revision that is not a date (but is a short visible token) gets the spec's UnsupportedProtocolVersionError
    // from the proxy, with its id and the versions served; anything else malformed is a bad request.
    if (version !== undefined && !PROTOCOL_VERSION.test(version as string) && !(req.method === "POST" && VERSION_TOKEN.test(version as string)))
      return badRequest("MCP-Protocol-Version must be a date (YYYY-MM-DD)");
    const lastEventId = req.headers["last-event-id"];
    if (typeof lastEventId === "string" && (lastEventId.length > MAX_EVENT_ID_CHARS || !VISIBLE_ASCII.test(lastEventId))) return badRequest("malformed Last-Event-ID");
    if (req.method === "POST" && !/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
      return sendJson(res, 415, { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request: Content-Type must be application/json" } });
    }

    // The 2026-07-28 request headers, bounded before the body is read (HeaderMismatch: missing or malformed).
    const mcp = readMcpHeaders(req);
    if ("problem" in mcp) return sendJson(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32020, message: `Header mismatch: ${mcp.problem}` } });
    const stateless = mcp.version !== null && isModernVersion(mcp.version);
    // The stateless era has no GET stream and no session to delete (subscriptions/listen replaces the GET stream).
    if (stateless && req.method !== "POST")
      return sendJson(res, 405, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "Method not allowed: protocol revision 2026-07-28 is POST only" } }, { allow: "POST" });

    // A session id is the upstream's, bound to this caller and server by the agent's key: any other is unknown here.
    // A stateless-era request has no session: its Mcp-Session-Id is ignored (transports, "Backward Compatibility").
    const who = `${principal.issuer}\u0000${principal.tenantId}\u0000${principal.user}\u0000${principal.client}`;
    const presented = req.headers["mcp-session-id"];
    let upstreamSession: string | null = null;
    if (typeof presented === "string" && !stateless) {
      upstreamSession = binder.unwrap(server.id, who, presented);
      if (upstreamSession === null) return sendJson(res, 404, { jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } });
    }
    const call: Call = {
      installed,
      server,
      principal,
      subjectToken: token,
      upstreamSession,
      trackKey: (s) => `${server.id}\u0000${who}\u0000${s ?? ""}`,
      wrapSession: (upstreamId) => binder.wrap(server.id, who, upstreamId),
      mcp,
      current: deps.current,
      freshUntil: deps.freshUntil ?? (() => Number.POSITIVE_INFINITY),
      trace,
    };

    let body: Buffer | null = null;
    if (req.method === "POST") {
      const b = await readBody(req);
      if (b === "too_large") {
        res.setHeader("connection", "close");
        return proxy.refuse(res, call, 413, -32600, `Request too large (over ${MAX_BODY_BYTES} bytes)`);
      }
      body = b;
    }
    try {
      await proxy.handle(req, res, call, body);
    } catch (err) {
      if (err instanceof InsufficientScope) {
        res.setHeader("www-authenticate", stepUpChallenge(challenge403(server, err.scopes), usedDpop));
        return sendJson(res, 403, { error: "insufficient_scope", scope: err.scopes.join(" ") });
      }
      throw err;
    }
  }

  // POSTs being handled (their answers included): a decision line of the only one is written on the event loop (DecisionWal.solo).
  let posts = 0;
  deps.wal.solo = () => posts === 1;
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    if (req.method === "POST") {
      posts++;
      // Until its answer is complete (or the connection is gone), not until the handler returns: an answer sent whole may
      // still be reading the rest of the upstream's stream.
      res.once("close", () => posts--);
    }
    handle(req, res).catch((err: unknown) => {
      log(`request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) sendJson(res, 500, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Internal error" } });
      else res.end();
    });
  });
  // A client has this long to send its headers, and its whole request (a 4 MiB body at ~150 KB/s); answers (SSE streams) are not limited.
  server.on("close", () => {
    void proxy.close();
    // The counts of the current window go to the WAL before shutdown flushes it.
    void gateLog.close();
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  return server;
}
