/**
 * A sample upstream MCP server (official SDK, Streamable HTTP) for the demo
 * and the tests: a small ticket desk with read, write and destructive tools.
 *
 *   PORT=3100 npx tsx sandbox/upstream.ts
 *   API_KEY_HEADER=x-api-key API_KEYS=k1,k2 PORT=3100 npx tsx sandbox/upstream.ts   # require an API key
 *
 * Test control endpoints (sandbox only, never in the product):
 *   POST /_sandbox/tools/{name}  {"description": "..."}  rewrite a tool, as a drifting server would
 *   POST /_sandbox/reset                                  restore the original tools
 *   POST /_sandbox/api-keys      {"header": "x-api-key", "keys": ["k1", "k2"]}
 *                                                         require one of these keys in that header (or in
 *                                                         the query parameter of that name); keys: [] → open again.
 *                                                         Changing the set at runtime models the upstream's own
 *                                                         overlap window during a rotation.
 *   GET  /_sandbox/authorization-log                      every Authorization header received (`headers`), and
 *                                                         per /mcp request its method, Authorization, API-key
 *                                                         header, query and whether it was accepted (`requests`)
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

interface Ticket {
  id: string;
  title: string;
  status: "open" | "closed";
  priority: "low" | "normal" | "high";
  project: string;
}

const tickets = new Map<string, Ticket>();
function seed() {
  tickets.clear();
  for (const [i, t] of [
    ["Printer on fire", "high", "ops"],
    ["Reset my password", "normal", "it"],
    ["Quarterly report numbers look off", "low", "finance"],
  ].entries()) {
    const id = `T-${100 + i}`;
    tickets.set(id, { id, title: t[0]!, priority: t[1] as Ticket["priority"], project: t[2]!, status: "open" });
  }
}
seed();

const originalDescriptions: Record<string, string> = {
  list_tickets: "List support tickets, optionally filtered by status or project.",
  get_ticket: "Get one support ticket by its id.",
  create_ticket: "Open a new support ticket in a project.",
  close_ticket: "Close a support ticket.",
  delete_project: "Permanently delete a project and every ticket in it.",
};
let descriptions = { ...originalDescriptions };

const text = (v: unknown) => ({ content: [{ type: "text" as const, text: JSON.stringify(v, null, 2) }] });

function buildServer(): McpServer {
  const server = new McpServer({ name: "sandbox-tickets", version: "1.0.0" });
  server.registerTool(
    "list_tickets",
    {
      title: "List tickets",
      description: descriptions.list_tickets,
      inputSchema: { status: z.enum(["open", "closed"]).optional(), project: z.string().max(64).optional() },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async ({ status, project }) => text([...tickets.values()].filter((t) => (!status || t.status === status) && (!project || t.project === project))),
  );
  server.registerTool(
    "get_ticket",
    {
      title: "Get ticket",
      description: descriptions.get_ticket,
      inputSchema: { id: z.string().regex(/^T-\d+$/) },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async ({ id }) => {
      const t = tickets.get(id);
      return t ? text(t) : { isError: true, content: [{ type: "text" as const, text: `No ticket ${id}` }] };
    },
  );
  server.registerTool(
    "create_ticket",
    {
      title: "Create ticket",
      description: descriptions.create_ticket,
      inputSchema: { title: z.string().min(3).max(200), project: z.string().max(64), priority: z.enum(["low", "normal", "high"]).default("normal") },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async ({ title, project, priority }) => {
      const id = `T-${100 + tickets.size}`;
      const t: Ticket = { id, title, project, priority, status: "open" };
      tickets.set(id, t);
      return text(t);
    },
  );
  server.registerTool(
    "close_ticket",
    {
      title: "Close ticket",
      description: descriptions.close_ticket,
      inputSchema: { id: z.string().regex(/^T-\d+$/), resolution: z.string().max(500).optional() },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    async ({ id }) => {
      const t = tickets.get(id);
      if (!t) return { isError: true, content: [{ type: "text" as const, text: `No ticket ${id}` }] };
      t.status = "closed";
      return text(t);
    },
  );
  server.registerTool(
    "delete_project",
    {
      title: "Delete project",
      description: descriptions.delete_project,
      inputSchema: { project: z.string().max(64), confirm: z.literal(true) },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ project }) => {
      let n = 0;
      for (const [id, t] of tickets) if (t.project === project && tickets.delete(id)) n++;
      return text({ project, deletedTickets: n });
    },
  );
  return server;
}

const authorizationLog: string[] = [];
/** One request as the sandbox saw it (GET /_sandbox/authorization-log): tests prove what reached the upstream. */
export interface RequestLogLine {
  at: number;
  method: string;
  authorization: string | null;
  apiKey: string | null;
  query: string;
  accepted: boolean;
  /** The MCP client's name (clientInfo.name of the session's initialize), when known. */
  client: string | null;
}
/** Session id → the client name its initialize gave. */
const sessionClients = new Map<string, string>();
const requestLog: RequestLogLine[] = [];
const MAX_LOG = 10_000;
let apiKeyHeader = (process.env.API_KEY_HEADER ?? "x-api-key").toLowerCase();
let apiKeys = new Set((process.env.API_KEYS ?? "").split(",").filter(Boolean));
const transports = new Map<string, StreamableHTTPServerTransport>();

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

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://sandbox");
  if (url.pathname.startsWith("/_sandbox/")) {
    if (req.method === "GET" && url.pathname === "/_sandbox/authorization-log") return send(res, 200, { headers: authorizationLog, requests: requestLog });
    if (req.method === "POST" && url.pathname === "/_sandbox/reset") {
      descriptions = { ...originalDescriptions };
      seed();
      return send(res, 200, { ok: true });
    }
    if (req.method === "POST" && url.pathname === "/_sandbox/api-keys") {
      const body = (await readBody(req)) as { header?: unknown; keys?: unknown };
      if (!Array.isArray(body?.keys) || body.keys.some((k) => typeof k !== "string" || !k)) return send(res, 400, { error: "keys must be an array of non-empty strings" });
      if (body.header !== undefined && (typeof body.header !== "string" || !/^[A-Za-z0-9-]{1,64}$/.test(body.header))) return send(res, 400, { error: "header must be a header name" });
      if (typeof body.header === "string") apiKeyHeader = body.header.toLowerCase();
      apiKeys = new Set(body.keys as string[]);
      return send(res, 200, { ok: true, header: apiKeyHeader, keys: apiKeys.size });
    }
    const m = /^\/_sandbox\/tools\/([a-z_]+)$/.exec(url.pathname);
    if (req.method === "POST" && m && m[1]! in descriptions) {
      const body = (await readBody(req)) as { description?: unknown };
      if (typeof body?.description !== "string") return send(res, 400, { error: "description must be a string" });
      descriptions[m[1] as keyof typeof descriptions] = body.description;
      return send(res, 200, { ok: true });
    }
    return send(res, 404, { error: "unknown sandbox endpoint" });
  }
  if (url.pathname !== "/mcp") return send(res, 404, { error: "not found" });

  if (req.headers.authorization) authorizationLog.push(req.headers.authorization);
  const sessionId = req.headers["mcp-session-id"] as string | undefined;
  const body = req.method === "POST" ? await readBody(req) : undefined;
  const clientName = isInitializeRequest(body) ? body.params.clientInfo.name : sessionId ? (sessionClients.get(sessionId) ?? null) : null;
  const headerKey = req.headers[apiKeyHeader];
  const presented = (typeof headerKey === "string" ? headerKey : null) ?? url.searchParams.get(apiKeyHeader);
  const accepted = apiKeys.size === 0 || (presented !== null && apiKeys.has(presented));
  requestLog.push({ at: Date.now(), method: req.method ?? "", authorization: req.headers.authorization ?? null, apiKey: presented, query: url.search, accepted, client: clientName });
  if (requestLog.length > MAX_LOG) requestLog.shift();
  if (!accepted) {
    res.setHeader("www-authenticate", `ApiKey header="${apiKeyHeader}"`);
    return send(res, 401, { jsonrpc: "2.0", error: { code: -32001, message: presented ? "invalid API key" : `API key required in ${apiKeyHeader}` }, id: null });
  }
  let transport = sessionId ? transports.get(sessionId) : undefined;
  if (!transport) {
    if (sessionId || req.method !== "POST" || !isInitializeRequest(body)) {
      return send(res, sessionId ? 404 : 400, { jsonrpc: "2.0", error: { code: -32000, message: sessionId ? "Unknown session" : "Initialize first" }, id: null });
    }
    const t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        transports.set(id, t);
        if (clientName) sessionClients.set(id, clientName);
      },
    });
    t.onclose = () => {
      if (t.sessionId) transports.delete(t.sessionId);
      if (t.sessionId) sessionClients.delete(t.sessionId);
    };
    await buildServer().connect(t);
    transport = t;
  }
  await transport.handleRequest(req, res, body);
}

const port = Number(process.env.PORT ?? 3100);
const host = process.env.HOST ?? "127.0.0.1";
createServer((req, res) => {
  handle(req, res).catch((err: unknown) => {
    if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : "error" });
  });
}).listen(port, host, () => {
  console.log(`[sandbox] MCP upstream listening on http://${host}:${port}/mcp`);
});
