import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { DEFAULT_AGENT_EGRESS } from "@/lib/net/agent";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { AppError } from "@/lib/errors";
import { EgressError } from "@/lib/net/egress";
import { redactUrl, redactUrlsIn } from "@/lib/enforcement/redact";
import type { ToolDefinition } from "@/lib/enforcement/tool-hash";
import type { PromptDefinition, ResourceDefinition, ResourceTemplateDefinition } from "@/lib/enforcement/catalogue-entry";

const MAX_TOOLS = 2000;
const MAX_PAGES = 100;

/** A `fetch` the lister uses: the control plane passes its egress guard; the agent, its own. */
export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * Lists every tool of a live MCP server over Streamable HTTP with the official
 * SDK client, following `nextCursor`. Errors come back as `upstream_error`
 * saying what failed (HTTP status, refused address, timeout, TLS, connection,
 * protocol) with the URL redacted (no query values, no userinfo: a vault
 * secret may be in the query): never a peer's body, stack or headers.
 */
export async function fetchUpstreamTools(url: string, opts: { timeoutMs?: number; headers?: Record<string, string>; fetch?: FetchLike } = {}): Promise<ToolDefinition[]> {
  return withUpstream(url, opts, "list tools", (client, timeout) => listToolsOf(client, timeout));
}

/** Everything an upstream lists: tools, resources, resource templates, prompts (lists it does not offer are empty). */
export interface UpstreamCatalogue {
  tools: ToolDefinition[];
  resources: ResourceDefinition[];
  resourceTemplates: ResourceTemplateDefinition[];
  prompts: PromptDefinition[];
}

/**
 * Lists an upstream's whole catalogue over one connection, with the same
 * client, bounds and error reporting as `fetchUpstreamTools`: tools,
 * resources, resource templates and prompts, each only when the server's
 * capabilities announce it (a server without `resources` is not asked).
 */
export async function fetchUpstreamCatalogue(url: string, opts: { timeoutMs?: number; headers?: Record<string, string>; fetch?: FetchLike } = {}): Promise<UpstreamCatalogue> {
  return withUpstream(url, opts, "list tools, resources and prompts", async (client, timeout) => {
    const caps = client.getServerCapabilities() ?? {};
    const out: UpstreamCatalogue = { tools: [], resources: [], resourceTemplates: [], prompts: [] };
    if (caps.tools) out.tools = await listToolsOf(client, timeout);
    if (caps.resources) {
      out.resources = await paged(
        "resources",
        (cursor) => client.listResources(cursor ? { cursor } : {}, { timeout }),
        (r) => r.resources,
        (x) => ({
          uri: x.uri,
          name: x.name,
          title: x.title ?? null,
          description: x.description ?? "",
          mimeType: x.mimeType ?? null,
          annotations: (x.annotations as Record<string, unknown> | undefined) ?? {},
        }),
      );
      out.resourceTemplates = await paged(
        "resource templates",
        (cursor) => client.listResourceTemplates(cursor ? { cursor } : {}, { timeout }),
        (r) => r.resourceTemplates,
        (x) => ({
          uriTemplate: x.uriTemplate,
          name: x.name,
          title: x.title ?? null,
          description: x.description ?? "",
          mimeType: x.mimeType ?? null,
          annotations: (x.annotations as Record<string, unknown> | undefined) ?? {},
        }),
      );
    }
    if (caps.prompts) {
      out.prompts = await paged(
        "prompts",
        (cursor) => client.listPrompts(cursor ? { cursor } : {}, { timeout }),
        (r) => r.prompts,
        (x) => ({
          name: x.name,
          title: x.title ?? null,
          description: x.description ?? "",
          arguments: (x.arguments ?? []).map((a) => ({ name: a.name, title: (a as { title?: string }).title ?? null, description: a.description ?? "", required: a.required === true })),
        }),
      );
    }
    return out;
  });
}

/** Follows `nextCursor` of one list, bounded in pages and items. */
async function paged<R extends { nextCursor?: string }, X, T>(what: string, page: (cursor: string | undefined) => Promise<R>, items: (r: R) => X[], map: (x: X) => T): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let n = 0; n < MAX_PAGES; n++) {
    const res = await page(cursor);
    for (const x of items(res)) {
      out.push(map(x));
      if (out.length > MAX_TOOLS) throw new AppError("upstream_error", `The server lists more than ${MAX_TOOLS} ${what}`);
    }
    cursor = res.nextCursor;
    if (!cursor) return out;
  }
  throw new AppError("upstream_error", `The server kept paginating ${what} past ${MAX_PAGES} pages`);
}

async function listToolsOf(client: Client, timeout: number): Promise<ToolDefinition[]> {
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
}

/** Connects with the official SDK client, runs `work`, and reports failures without the peer's words. */
async function withUpstream<T>(
  url: string,
  opts: { timeoutMs?: number; headers?: Record<string, string>; fetch?: FetchLike },
  doing: string,
  work: (client: Client, timeout: number) => Promise<T>,
): Promise<T> {
  const timeout = opts.timeoutMs ?? 15_000;
  // Through the egress guard: callers pass theirs (the control plane's policy, the agent's); the default allows public addresses and loopback.
  const base: FetchLike = opts.fetch ?? DEFAULT_AGENT_EGRESS.fetch;
  // What the peer answered, kept apart from the SDK's messages (which quote response bodies).
  let badStatus: number | undefined;
  let transportError: unknown;
  const tracking: FetchLike = async (u, init) => {
    try {
      const res = await base(u, { ...init, redirect: "manual" });
      // A GET without a server-sent stream (405) is normal; any other non-2xx is what failed.
      if (!res.ok && !(res.status === 405 && (init?.method ?? "GET") === "GET")) badStatus = res.status;
      return res;
    } catch (err) {
      transportError ??= err;
      throw err;
    }
  };
  const client = new Client({ name: "mandate-catalog", version: "0.1.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: opts.headers ?? {}, redirect: "manual" }, fetch: tracking });
  try {
    await client.connect(transport, { timeout });
    return await work(client, timeout);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError("upstream_error", `Could not ${doing} from ${redactUrl(url)}: ${describe(err, transportError, badStatus)}`);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close().catch(() => {});
  }
}

/** What failed, from what Mandate itself observed; never the text of an SDK error (it quotes the peer's body). */
function describe(err: unknown, transportError: unknown, badStatus: number | undefined): string {
  for (const e of [transportError, err]) {
    if (e instanceof EgressError) return e.code === "http_status" ? `HTTP ${e.status}` : redactUrlsIn(e.message);
  }
  if (badStatus !== undefined) return `the server answered HTTP ${badStatus}`;
  if (transportError !== undefined) {
    const code = networkCode(transportError);
    if (code === "ECONNREFUSED") return "connection refused";
    if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "the host could not be resolved";
    if (code && /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/.test(code)) return `TLS failed (${code})`;
    const name = transportError instanceof Error ? transportError.name : "";
    if (name === "TimeoutError" || name === "AbortError") return "timed out";
    return code ? `connection failed (${code})` : "connection failed";
  }
  if (err instanceof McpError) {
    if (err.code === ErrorCode.RequestTimeout) return "timed out";
    if (err.code === ErrorCode.ConnectionClosed) return "the connection closed";
    return `the server answered a JSON-RPC error (code ${err.code})`;
  }
  return "the server did not answer as an MCP server";
}

function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}
