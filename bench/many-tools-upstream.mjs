/**
 * An upstream MCP server (official SDK, Streamable HTTP, one session per client) with TOOLS tools
 * (default 1,000), for bench/list.ts: `tools/list` of a large catalogue, direct vs through the agent.
 *
 *   node bench/many-tools-upstream.mjs <port> [tools]
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

const port = Number(process.argv[2] ?? 3200);
const count = Number(process.argv[3] ?? 1000);

function buildServer() {
  const server = new McpServer({ name: "many-tools", version: "1.0.0" });
  for (let i = 0; i < count; i++) {
    const name = `tool_${String(i).padStart(4, "0")}`;
    server.registerTool(
      name,
      { description: `Bench tool ${i}: reads one record by id.`, inputSchema: { id: z.string(), limit: z.number().int().optional() }, annotations: { readOnlyHint: i % 2 === 0 } },
      async ({ id }) => ({ content: [{ type: "text", text: `${name} ${id}` }] }),
    );
  }
  return server;
}

const transports = new Map();
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString("utf8");
  return raw ? JSON.parse(raw) : undefined;
}
createServer((req, res) => {
  (async () => {
    const sessionId = req.headers["mcp-session-id"];
    const body = req.method === "POST" ? await readBody(req) : undefined;
    let transport = sessionId ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId || req.method !== "POST" || !isInitializeRequest(body)) {
        res.writeHead(sessionId ? 404 : 400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "Initialize first" }, id: null }));
        return;
      }
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => transports.set(id, t) });
      t.onclose = () => t.sessionId && transports.delete(t.sessionId);
      await buildServer().connect(t);
      transport = t;
    }
    await transport.handleRequest(req, res, body);
  })().catch((err) => {
    if (!res.headersSent) res.writeHead(500).end(String(err?.message ?? err));
  });
}).listen(port, "127.0.0.1", () => process.send?.("ready"));
