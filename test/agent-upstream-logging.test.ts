/**
 * Issue 11: the upstream's log (notifications/message) reaches a caller through the agent only when the
 * server's upstreamLogging setting is on in the bundle in force; logging/setLevel likewise. Real agent,
 * control plane, signed bundles, an SDK v1 upstream whose tool logs, and an SDK v1 client.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { tools } from "@/db/schema";
import { publishBundle } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { updateFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer, updateServer } from "@/lib/servers/service";
import { uniq } from "./db";
import { startAgentStack, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;
let upstream: Server;
let uri: string;
let serverId: string;

beforeAll(async () => {
  s = await startAgentStack();
  upstream = createHttpServer((req, res) => {
    const mcp = new McpServer({ name: "noisy", version: "1.0.0" }, { capabilities: { logging: {} } });
    mcp.registerTool("noisy", { description: "Logs, then answers.", inputSchema: { x: z.string().optional() } }, async (_args, extra) => {
      await extra.sendNotification({ method: "notifications/message", params: { level: "info", data: "upstream log line" } });
      return { content: [{ type: "text", text: "done" }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: false });
    res.on("close", () => void transport.close());
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  uri = `http://127.0.0.1:${new URL(s.resourceUri).port}/noisy`;
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({
      tenantId: s.tenantA,
      name: uniq("Noisy "),
      resourceUri: uri,
      upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`,
      scopes: ["noisy:call"],
      issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  serverId = server!.id;
  await importCatalog(s.owner.ctx, serverId);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, serverId, { baseVersion: 0, mapping: { "noisy:call": ["noisy"] } });
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, serverId] });
  await publish();
}, 180_000);

afterAll(async () => {
  await new Promise((r) => upstream?.close(r));
  await s?.stop();
});

async function publish() {
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "logging" }, s.kek);
  await s.waitRevision(rev + 1);
}

/** Calls the tool through the agent; returns the log messages the caller received and the setLevel outcome. */
async function run(): Promise<{ logs: unknown[]; setLevel: string }> {
  const bearer = await s.issuer.sign({ sub: "alice", tenant: s.tenantA, client_id: "test-client", scope: "noisy:call" }, uri);
  const client = new Client({ name: "t", version: "1" });
  const logs: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
  await client.connect(new StreamableHTTPClientTransport(new URL(uri), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  try {
    const r = await client.callTool({ name: "noisy", arguments: {} });
    expect(r.content).toEqual([{ type: "text", text: "done" }]);
    const setLevel = await client.setLoggingLevel("info").then(
      () => "allowed",
      (e: Error) => `denied: ${e.message}`,
    );
    return { logs, setLevel };
  } finally {
    await client.close();
  }
}

describe("upstream logging through the agent (issue 11)", () => {
  it("is dropped and logging/setLevel denied by default; both pass once the server's upstreamLogging setting is on", async () => {
    const off = await run();
    expect(off.logs).toEqual([]);
    expect(off.setLevel).toMatch(/^denied: MCP error -32003/);
    await updateServer(s.owner.ctx, serverId, { upstreamLogging: true }, s.kek);
    await publish();
    expect(s.agent.sync.current!.content.servers.find((x) => x.id === serverId)?.upstreamLogging).toBe(true);
    const on = await run();
    expect(on.logs).toEqual(["upstream log line"]);
    expect(on.setLevel).toBe("allowed");
  });
});
