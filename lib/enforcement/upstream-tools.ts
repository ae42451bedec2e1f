import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AppError } from "@/lib/errors";
import type { ToolDefinition } from "@/lib/enforcement/tool-hash";

const MAX_TOOLS = 2000;
const MAX_PAGES = 100;

/**
 * Lists every tool of a live MCP server over Streamable HTTP with the official
 * SDK client, following `nextCursor`. Errors come back as `upstream_error`
 * with the reason, never with a stack or headers.
 */
export async function fetchUpstreamTools(url: string, opts: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<ToolDefinition[]> {
  const timeout = opts.timeoutMs ?? 15_000;
  const client = new Client({ name: "mandate-catalog", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: opts.headers ?? {} } });
  try {
    await client.connect(transport, { timeout });
    const out: ToolDefinition[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await client.listTools(cursor ? { cursor } : {}, { timeout });
      for (const t of res.tools) {
        out.push({
          name: t.name,
          // Exactly as listed (no fallback to annotations.title): the agent hashes the live listing the same way.
          title: t.title ?? null,
          description: t.description ?? "",
          inputSchema: t.inputSchema as Record<string, unknown>,
          outputSchema: (t.outputSchema as Record<string, unknown> | undefined) ?? null,
          annotations: (t.annotations as Record<string, unknown> | undefined) ?? {},
        });
        if (out.length > MAX_TOOLS) throw new AppError("upstream_error", `The server lists more than ${MAX_TOOLS} tools`);
      }
      cursor = res.nextCursor;
      if (!cursor) return out;
    }
    throw new AppError("upstream_error", `The server kept paginating past ${MAX_PAGES} pages`);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError("upstream_error", `Could not list tools from ${url}: ${describe(err)}`);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
  }
}

function describe(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // Keep the reason short and single-line; never echo response bodies at length.
  return msg.replace(/\s+/g, " ").slice(0, 300);
}
