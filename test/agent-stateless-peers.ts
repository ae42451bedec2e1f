/**
 * A small upstream on the official SDK v2 (@modelcontextprotocol/server 2.4,
 * `createMcpHandler`) for the stateless-era agent tests: the 2026-07-28 era
 * (per-request `_meta`, server/discover, subscriptions/listen, header
 * validation by the SDK itself) and, unless `legacy: "reject"`, the
 * handshake era served statelessly (so the control plane's catalogue import,
 * which speaks `initialize`, can list its tools). It logs every request it
 * received (HTTP method, Mcp-Method header, body method and name) so tests
 * can prove what reached it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createMcpHandler, fromJsonSchema, McpServer, type McpHttpHandler } from "@modelcontextprotocol/server";
import { z } from "zod";

export interface V2Upstream {
  url: string;
  handler: McpHttpHandler;
  /** What reached it: HTTP method, the Mcp-Method header, the body's method and params.name / params.uri. */
  /** Every request it received; `probe`: the agent's own server/discover probe (its JSON-RPC id is "mandate-discover"). */
  log: { http: string; header: string | null; method: string | null; name: string | null; probe: boolean }[];
  stop(): Promise<void>;
}

function buildServer(): McpServer {
  // An hour, shared caches welcome: what the agent must never pass on for a list it filtered per caller.
  const hint = { ttlMs: 3_600_000, cacheScope: "public" as const };
  const server = new McpServer(
    { name: "stateless-tickets", version: "2.0.0" },
    {
      capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, logging: {}, experimental: { "com.example/beta": {} } },
      cacheHints: { "server/discover": hint, "tools/list": hint, "resources/list": hint, "resources/read": hint, "prompts/list": hint, "resources/templates/list": hint },
    },
  );
  const text = (t: string) => ({ content: [{ type: "text" as const, text: t }] });
  server.registerTool("list_tickets", { description: "List support tickets.", inputSchema: z.object({ project: z.string().optional() }) }, async ({ project }) =>
    text(`tickets of ${project ?? "every project"}`),
  );
  server.registerTool("get_ticket", { description: "Get one ticket.", inputSchema: z.object({ id: z.string() }) }, async ({ id }) => text(`ticket ${id}`));
  server.registerTool("delete_project", { description: "Delete a project.", inputSchema: z.object({ project: z.string() }) }, async ({ project }) => text(`deleted ${project}`));
  server.registerTool(
    "query_region",
    {
      description: "Query one region (its region is mirrored into Mcp-Param-Region).",
      inputSchema: fromJsonSchema<{ region?: string; query?: string }>({
        type: "object",
        properties: { region: { type: "string", "x-mcp-header": "Region" }, query: { type: "string" } },
      } as Parameters<typeof fromJsonSchema>[0]),
    },
    async (args) => text(`region=${args.region ?? "<none>"}`),
  );
  server.registerResource("readme", "docs://readme", { description: "The desk's readme", mimeType: "text/plain" }, async (uri) => ({ contents: [{ uri: uri.href, text: "hello" }] }));
  server.registerPrompt("triage", { description: "Triage a ticket", argsSchema: { id: z.string() } }, async ({ id }) => ({
    messages: [{ role: "user" as const, content: { type: "text" as const, text: `triage ${id}` } }],
  }));
  return server;
}

export async function startV2Upstream(opts: { legacy?: "stateless" | "reject" } = {}): Promise<V2Upstream> {
  const handler = createMcpHandler(() => buildServer(), { legacy: opts.legacy ?? "stateless", keepAliveMs: 0 });
  const log: V2Upstream["log"] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      type Seen = { id?: unknown; method?: unknown; params?: { name?: unknown; uri?: unknown } } | null;
      const parse = (): Seen => {
        try {
          return body.length ? (JSON.parse(body.toString("utf8")) as Seen) : null;
        } catch {
          return null;
        }
      };
      const parsed = parse();
      const header = req.headers["mcp-method"];
      const nameOrUri = parsed?.params?.name ?? parsed?.params?.uri;
      log.push({
        http: req.method ?? "",
        header: typeof header === "string" ? header : null,
        method: typeof parsed?.method === "string" ? parsed.method : null,
        name: typeof nameOrUri === "string" ? nameOrUri : null,
        probe: parsed?.method === "server/discover" && parsed.id === "mandate-discover",
      });
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
      const ac = new AbortController();
      res.on("close", () => ac.abort());
      const out = await handler.fetch(new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers, body: req.method === "POST" ? body : undefined, signal: ac.signal }));
      const h: Record<string, string> = {};
      out.headers.forEach((v, k) => (h[k] = v));
      res.writeHead(out.status, h);
      if (out.body) {
        const reader = out.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          res.write(value);
        }
      }
      res.end();
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  return {
    url,
    handler,
    log,
    stop: async () => {
      await handler.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}
