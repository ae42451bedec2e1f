import { redactUrlsIn } from "@/lib/enforcement/redact";
import type { IncomingMessage, ServerResponse } from "node:http";
import { driftKey, driftOf, markDrift } from "./drift";
import { performance } from "node:perf_hooks";
import { uuidv7 } from "uuidv7";
import type { BundleServer } from "@/lib/enforcement/bundle";
import type { DecisionRequest, DecisionResult } from "@/lib/enforcement/engine";
import { toolHash, type ToolDefinition } from "@/lib/enforcement/tool-hash";
import { maskArgs } from "@/lib/enforcement/masking";
import type { Installed } from "./bundle-sync";
import { unapprovedClient } from "./live-index";
import { CredentialUnavailable, inject, type CredentialBroker, type Injection } from "./credentials";
import type { Metrics } from "./metrics";
import type { Principal } from "./token";
import type { DecisionRecord, DecisionWal } from "./wal";

/** JSON-RPC error code for a request the policy denied. */
export const DENIED_CODE = -32003;
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Masked arguments larger than this (as JSON) are not sent in the decision line. */
export const MAX_ARGS_BYTES = 16 * 1024;

type Id = string | number | null;
interface JsonRpcMessage {
  jsonrpc?: string;
  id?: Id;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

export interface ProxyDeps {
  metrics: Metrics;
  wal: DecisionWal;
  agentId: () => string | null;
  log: (msg: string) => void;
  /** Upstream credentials from the vault; without it every upstream is called without one. */
  credentials?: CredentialBroker;
}

/** The masked arguments and the context that go into a tools/call decision line. */
function callDetails(installed: Installed, serverId: string, tool: string, p: Principal, args: Record<string, unknown>): Pick<DecisionRecord, "args" | "context"> {
  const m = maskArgs(args, installed.content.masking ?? [], serverId, tool);
  // Within the decision line's limits (lib/decisions/ingest.ts), so one odd call never gets a batch refused.
  const masked = m.masked.filter((x) => x.length <= 512).slice(0, 99);
  let out = m.args;
  if (out && Buffer.byteLength(JSON.stringify(out)) > MAX_ARGS_BYTES) {
    out = null;
    masked.push("args-truncated");
  }
  const int = (n: number) => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
  return {
    args: out,
    context: {
      groups: p.groups.filter((g) => g.length <= 256).slice(0, 100),
      actors: p.actors.filter((a) => a.length <= 256).slice(0, 20),
      token: { iss: p.issuer.slice(0, 2048), iat: int(p.iat), exp: int(p.exp) },
      masked,
    },
  };
}

/** Why a tool call needs a token with more scopes (RFC 6750 step-up). */
export class InsufficientScope {
  constructor(readonly scopes: string[]) {}
}

/** Scopes whose mapping grants a tool, from the bundle's scope policies. */
export function scopesGranting(installed: Installed, serverId: string, tool: string): string[] {
  const out = new Set<string>();
  for (const [id, m] of Object.entries(installed.content.policies)) {
    if (m.kind !== "scope" || m.serverId !== serverId || (m.tools && !m.tools.includes(tool))) continue;
    const scope = m.name.startsWith("scope ") ? m.name.slice(6) : id.startsWith(`scope:${serverId}:`) ? id.slice(`scope:${serverId}:`.length) : null;
    if (scope) out.add(scope);
  }
  return [...out].sort();
}

/**
 * The MCP proxy for one request to one server: decides every message of a
 * POST before anything reaches the upstream, forwards what is allowed
 * (without the client's Authorization or cookies), and filters tools/list
 * answers, in JSON or SSE.
 */
export class McpProxy {
  constructor(private readonly d: ProxyDeps) {}

  private record(
    installed: Installed,
    server: BundleServer,
    p: Principal,
    method: string,
    tool: string | null,
    r: DecisionResult,
    started: number,
    details: Pick<DecisionRecord, "args" | "context"> = {},
  ): string {
    const id = uuidv7();
    const seconds = (performance.now() - started) / 1000;
    this.d.metrics.decision(r.decision, seconds);
    this.d.wal.append({
      id,
      time: new Date().toISOString(),
      agentId: this.d.agentId(),
      bundleRevision: installed.content.manifest.revision,
      tenantId: p.tenantId,
      serverId: server.id,
      method,
      tool,
      user: p.user,
      client: p.client,
      scopes: p.scopes,
      outcome: r.decision,
      determining: r.determining,
      reason: r.reason.slice(0, 500),
      latencyUs: Math.round(seconds * 1e6),
      ...details,
    });
    return id;
  }

  private request(server: BundleServer, p: Principal, action: DecisionRequest["action"], tool: string, args: Record<string, unknown>): DecisionRequest {
    return {
      action,
      serverId: server.id,
      tool,
      tenantId: p.tenantId,
      user: p.user,
      groups: p.groups,
      client: p.client,
      scopes: p.scopes,
      args,
      delegation: { actors: p.actors },
      time: new Date(),
      token: { iss: p.issuer, iat: p.iat, exp: p.exp },
    };
  }

  /** Decides one message: null to forward it, or the JSON-RPC answer to give instead. Throws InsufficientScope for step-up. */
  private decideMessage(installed: Installed, server: BundleServer, p: Principal, m: JsonRpcMessage): JsonRpcMessage | null {
    // Responses (to the server's own requests) and notifications pass: they carry no call.
    if (m.method === undefined) return null;
    if (m.id === undefined) {
      if (typeof m.method === "string" && m.method.startsWith("notifications/")) return null;
      // A "request" without an id (say tools/call) is not a notification: refused, not forwarded unseen.
      return { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request: only notifications/* may omit the id" } } as JsonRpcMessage;
    }
    if (m.method === "initialize" || m.method === "ping" || m.method === "tools/list") return null;
    const started = performance.now();
    if (m.method !== "tools/call") {
      const r: DecisionResult = { decision: "deny", reason: `method ${m.method} is not allowed through this agent`, determining: [], errors: [] };
      return denial(m.id, this.record(installed, server, p, m.method, null, r, started), r.reason);
    }
    const tool = typeof m.params?.name === "string" ? m.params.name : "";
    const rawArgs = m.params?.arguments;
    const args = rawArgs && typeof rawArgs === "object" && !Array.isArray(rawArgs) ? (rawArgs as Record<string, unknown>) : {};
    const details = callDetails(installed, server.id, tool, p, args);
    const unapproved = unapprovedClient(installed.content, p);
    let r: DecisionResult;
    if (!tool) r = { decision: "deny", reason: "tools/call without a tool name", determining: [], errors: [] };
    else if (unapproved) r = { decision: "deny", reason: unapproved, determining: [], errors: [] };
    else if (driftOf(installed).has(driftKey(server.id, tool))) r = { decision: "deny", reason: "the tool changed upstream since it was approved", determining: [], errors: [] };
    else r = installed.engine.decide(this.request(server, p, "call_tool", tool, args));
    if (r.decision === "allow") {
      this.record(installed, server, p, "tools/call", tool, r, started, details);
      return null;
    }
    if (unapproved) return denial(m.id, this.record(installed, server, p, "tools/call", tool, r, started, details), r.reason);
    // No policy allowed it and no scope the token holds grants the tool: a token with one of those scopes might.
    const granting = tool && !driftOf(installed).has(driftKey(server.id, tool)) && installed.engine.tool(server.id, tool) ? scopesGranting(installed, server.id, tool) : [];
    const id = this.record(installed, server, p, "tools/call", tool, r, started, details);
    if (r.determining.length === 0 && granting.length && !granting.some((s) => p.scopes.includes(s))) throw new InsufficientScope(granting);
    return denial(m.id, id, r.reason);
  }

  /** Filters a tools/list result to approved, unchanged tools the caller could be allowed to call. */
  private filterTools(installed: Installed, server: BundleServer, p: Principal, result: unknown): unknown {
    const r = result as { tools?: ToolDefinition[] } | null;
    if (!r || !Array.isArray(r.tools)) return result;
    const started = performance.now();
    const unapproved = unapprovedClient(installed.content, p);
    if (unapproved) {
      const outcome: DecisionResult = { decision: "deny", reason: `listed 0 of ${r.tools.length} tools: ${unapproved}`, determining: [], errors: [] };
      this.record(installed, server, p, "tools/list", null, outcome, started);
      return { ...r, tools: [] };
    }
    const kept: ToolDefinition[] = [];
    const hidden: string[] = [];
    for (const t of r.tools) {
      const approved = t && typeof t.name === "string" ? installed.engine.tool(server.id, t.name) : undefined;
      if (!approved) {
        hidden.push(`${String(t?.name)} (not approved)`);
        continue;
      }
      let live: string;
      try {
        live = toolHash(t);
      } catch {
        live = "";
      }
      if (live !== approved.hash || driftOf(installed).has(driftKey(server.id, t.name))) {
        if (live !== approved.hash) markDrift(installed, server.id, t.name, this.d, live, approved.hash);
        hidden.push(`${t.name} (changed upstream)`);
        continue;
      }
      if (installed.engine.decide(this.request(server, p, "list_tools", t.name, {})).decision === "allow") kept.push(t);
      else hidden.push(`${t.name} (not allowed)`);
    }
    const outcome: DecisionResult = { decision: "allow", reason: `listed ${kept.length} of ${r.tools.length} tools${hidden.length ? `; hidden: ${hidden.join(", ")}` : ""}`, determining: [], errors: [] };
    this.record(installed, server, p, "tools/list", null, outcome, started);
    return { ...r, tools: kept };
  }

  private rewrite(installed: Installed, server: BundleServer, p: Principal, listIds: Set<Id>, m: JsonRpcMessage): JsonRpcMessage {
    if (m && typeof m === "object" && m.id !== undefined && listIds.has(m.id) && m.result !== undefined) return { ...m, result: this.filterTools(installed, server, p, m.result) };
    return m;
  }

  async handle(req: IncomingMessage, res: ServerResponse, installed: Installed, server: BundleServer, p: Principal, body: Buffer | null): Promise<void> {
    if (req.method !== "POST") {
      const cred = await this.credential(res, installed, server, p, null);
      if (cred === false) return;
      return this.forward(req, res, server, cred, null, () => null);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body!.toString("utf8"));
    } catch {
      return sendJson(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
    }
    const batch = Array.isArray(parsed);
    const messages = (batch ? parsed : [parsed]) as JsonRpcMessage[];
    if (!messages.length || messages.some((m) => !m || typeof m !== "object" || Array.isArray(m))) {
      return sendJson(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request" } });
    }
    const answers: JsonRpcMessage[] = [];
    const forward: JsonRpcMessage[] = [];
    for (const m of messages) {
      const answer = this.decideMessage(installed, server, p, m); // may throw InsufficientScope
      if (answer) answers.push(answer);
      else forward.push(m);
    }
    if (!forward.length) return sendJson(res, 200, batch ? answers : answers[0]);
    const listIds = new Set<Id>(forward.filter((m) => m.method === "tools/list" && m.id !== undefined).map((m) => m.id!));
    const out = JSON.stringify(batch ? forward : forward[0]);
    const cred = await this.credential(res, installed, server, p, batch ? null : (forward[0]!.id ?? null));
    if (cred === false) return;
    await this.forward(req, res, server, cred, out, (m) => this.rewrite(installed, server, p, listIds, m), answers, batch);
  }

  /**
   * The upstream credential for this call, or null for an open upstream.
   * Fails closed: when the bundle names a credential that cannot be resolved,
   * answers 502 itself and returns false (nothing is forwarded).
   */
  private async credential(res: ServerResponse, installed: Installed, server: BundleServer, p: Principal, id: Id): Promise<Injection | null | false> {
    if (!this.d.credentials) return null;
    try {
      return await this.d.credentials.resolve(installed.content, server.id, p.tenantId);
    } catch (err) {
      if (!(err instanceof CredentialUnavailable)) throw err;
      this.d.metrics.credentialFailures++;
      sendJson(res, 502, { jsonrpc: "2.0", id, error: { code: -32603, message: "Upstream credential unavailable" } });
      return false;
    }
  }

  /**
   * Sends the request upstream and streams the answer back. JSON answers and
   * SSE events pass through `rewrite` (tools/list filtering); `extra`
   * (denials decided here) are merged into the answer.
   */
  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    server: BundleServer,
    credential: Injection | null,
    body: string | null,
    rewrite: (m: JsonRpcMessage) => JsonRpcMessage | null,
    extra: JsonRpcMessage[] = [],
    batch = false,
  ): Promise<void> {
    const headers: Record<string, string> = {};
    // Only what the transport needs: never Authorization (no token pass-through), never cookies.
    for (const h of ["mcp-session-id", "mcp-protocol-version", "accept", "last-event-id", "content-type"]) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    if (body !== null) headers["content-type"] = "application/json";
    // The vault's credential for this (server, tenant), never the client's token.
    const target = inject(server.upstreamUrl, headers, credential);
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    let up: Response;
    try {
      up = await fetch(target, { method: req.method, headers, body: body ?? undefined, signal: abort.signal, redirect: "manual" });
    } catch (err) {
      this.d.metrics.upstreamErrors++;
      this.d.log(`upstream ${server.id} unreachable: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
      return sendJson(res, 502, { jsonrpc: "2.0", id: null, error: { code: -32603, message: "Upstream unavailable" } });
    }
    if (up.status >= 500) this.d.metrics.upstreamErrors++;
    const out: Record<string, string> = {};
    for (const h of ["content-type", "mcp-session-id", "mcp-protocol-version", "cache-control"]) {
      const v = up.headers.get(h);
      if (v) out[h] = v;
    }
    const type = up.headers.get("content-type") ?? "";
    if (type.includes("text/event-stream") && up.body) {
      setHeaders(res, { ...out, "x-accel-buffering": "no" });
      res.writeHead(up.status);
      res.flushHeaders();
      for (const m of extra) res.write(`event: message\ndata: ${JSON.stringify(m)}\n\n`);
      await pipeSse(up.body, res, rewrite).catch(() => {});
      res.end();
      return;
    }
    const text = await up.text().catch(() => "");
    if (type.includes("application/json") && text) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      if (json !== undefined) {
        const list = Array.isArray(json) ? (json as JsonRpcMessage[]) : [json as JsonRpcMessage];
        const rewritten = list.map((m) => rewrite(m) ?? m);
        const merged = [...rewritten, ...extra];
        delete out["content-length"];
        return sendJson(res, up.status, batch || Array.isArray(json) ? merged : merged.length === 1 ? merged[0] : merged, out);
      }
    }
    if (extra.length && (up.status === 202 || !text)) return sendJson(res, 200, batch ? extra : extra[0], out);
    setHeaders(res, out);
    res.writeHead(up.status).end(text);
  }
}

/** Rewrites each SSE event's data (one JSON-RPC message) and passes everything else through. */
async function pipeSse(body: ReadableStream<Uint8Array>, res: ServerResponse, rewrite: (m: JsonRpcMessage) => JsonRpcMessage | null): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  const emit = (event: string) => {
    const lines = event.split(/\r?\n/);
    const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(l.startsWith("data: ") ? 6 : 5));
    if (data.length) {
      try {
        const m = JSON.parse(data.join("\n")) as JsonRpcMessage;
        const r = rewrite(m);
        if (r && r !== m) {
          const others = lines.filter((l) => !l.startsWith("data:"));
          event = [...others, `data: ${JSON.stringify(r)}`].join("\n");
        }
      } catch {
        // Not JSON: pass as is.
      }
    }
    res.write(event + "\n\n");
  };
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const sep = /\r?\n\r?\n/.exec(buf.slice(i))![0].length;
      emit(buf.slice(0, i));
      buf = buf.slice(i + sep);
    }
  }
  if (buf.trim()) emit(buf);
}

function denial(id: Id | undefined, decisionId: string, reason: string): JsonRpcMessage {
  return { jsonrpc: "2.0", id: id ?? null, error: { code: DENIED_CODE, message: "Denied by policy", data: { decisionId, reason } } } as JsonRpcMessage;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  setHeaders(res, { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
  res.writeHead(status).end(text);
}

/** Headers set with setHeader stay readable (getHeader) after they are sent: the session binding reads mcp-session-id. */
function setHeaders(res: ServerResponse, headers: Record<string, string>): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
}
