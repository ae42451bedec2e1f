/**
 * A bank behind a real agent, for the approval tests and bench/approval.ts:
 * the agent stack of agent-proc-harness.ts plus a second server whose
 * upstream (official MCP SDK, stateless Streamable HTTP) has one `transfer`
 * tool (and the same bank on the SDK v2, stateless era, at /bank2), the scope `bank`, an `@approval("finance-approvers")` forbid over
 * 1000, a plain forbid on the payee "sanctioned", and an approver.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { eq } from "drizzle-orm";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { createMcpHandler, fromJsonSchema, McpServer as McpServerV2 } from "@modelcontextprotocol/server";
import { z } from "zod";
import { tools } from "@/db/schema";
import { addGroupMember, createGroup } from "@/lib/approvals/service";
import { publishBundle } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { updateFleet } from "@/lib/fleets/service";
import { createPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { startAgentStack, type AgentStack } from "./agent-proc-harness";
import { makeUser, uniq, type MadeUser } from "./db";

export interface ApprovalStack {
  s: AgentStack;
  bankServerId: string;
  bankUri: string;
  /** The same bank on the official SDK v2, stateless era only (2026-07-28), served by the agent at /bank2. */
  statelessUri: string;
  approver: MadeUser;
  executed: { amount: number; to: string }[];
  bearer(claims?: Record<string, unknown>): Promise<string>;
  /** Calls transfer with the SDK client; the JSON-RPC error (code, message, data) when refused. */
  transfer(token: string, args: { amount: number; to: string }): Promise<{ ok: true } | { ok: false; code: number; message: string; data: Record<string, unknown> }>;
  stop(): Promise<void>;
}

export async function startApprovalStack(): Promise<ApprovalStack> {
  const s = await startAgentStack();
  const executed: { amount: number; to: string }[] = [];
  const bank: Server = createHttpServer((req, res) => {
    void (async () => {
      const server = new McpServer({ name: "bank", version: "1.0.0" });
      server.registerTool("transfer", { description: "Move money", inputSchema: { amount: z.number().int(), to: z.string().max(64) } }, async ({ amount, to }) => {
        executed.push({ amount, to });
        return { content: [{ type: "text" as const, text: `sent ${amount} to ${to}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
      await transport.handleRequest(req, res, body);
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((r) => bank.listen(0, "127.0.0.1", () => r()));
  const upstream = `http://127.0.0.1:${(bank.address() as AddressInfo).port}/mcp`;
  const v2 = createMcpHandler(() => {
    const server = new McpServerV2({ name: "bank-v2", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.registerTool(
      "transfer",
      {
        description: "Move money",
        inputSchema: fromJsonSchema<{ amount: number; to: string }>({ type: "object", properties: { amount: { type: "integer" }, to: { type: "string", maxLength: 64 } }, required: ["amount", "to"] }),
      },
      async ({ amount, to }) => {
        executed.push({ amount, to });
        return { content: [{ type: "text" as const, text: `sent ${amount} to ${to}` }] };
      },
    );
    return server;
  });
  const bank2: Server = createHttpServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const raw = Buffer.concat(chunks);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "connection" && k !== "transfer-encoding") headers.set(k, v);
      const webReq = new Request(`http://127.0.0.1${req.url ?? "/"}`, { method: req.method, headers, body: req.method === "POST" && raw.length ? new Uint8Array(raw) : undefined });
      const out = await v2.fetch(webReq, raw.length ? { parsedBody: JSON.parse(raw.toString("utf8")) } : undefined);
      const h: Record<string, string> = {};
      out.headers.forEach((v, k) => (h[k] = v));
      res.writeHead(out.status, h).end(Buffer.from(await out.arrayBuffer()));
    })().catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((r) => bank2.listen(0, "127.0.0.1", () => r()));
  const upstream2 = `http://127.0.0.1:${(bank2.address() as AddressInfo).port}/mcp`;
  const bankUri = `http://127.0.0.1:${new URL(s.resourceUri).port}/bank`;
  const statelessUri = `http://127.0.0.1:${new URL(s.resourceUri).port}/bank2`;
  const addBank = async (resourceUri: string, upstreamUrl: string) => {
    const server = await createServer(
      s.owner.ctx,
      createServerInput.parse({
        tenantId: s.tenantA,
        name: uniq("Bank "),
        resourceUri,
        upstreamUrl,
        scopes: ["bank"],
        issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
      }),
    );
    const id = server!.id;
    await importCatalog(s.owner.ctx, id);
    for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, id))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
    await putScopeMapping(s.owner.ctx, id, { baseVersion: 0, mapping: { bank: ["transfer"] } });
    const policy = (name: string, cedar: string) => createPolicy(s.owner.ctx, { tenantId: s.tenantA, serverId: id, name, description: "", kind: "cedar", enabled: true, cedar } as never);
    await policy(
      "Large transfers need finance",
      `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource) when { context.args has amount && context.args.amount > 1000 };`,
    );
    await policy("No sanctioned payees", `forbid (principal, action, resource) when { context.args has to && context.args.to == "sanctioned" };`);
    return id;
  };
  const bankServerId = await addBank(bankUri, upstream);
  const statelessServerId = await addBank(statelessUri, upstream2);
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, bankServerId, statelessServerId] });
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "bank" }, s.kek);
  await s.waitRevision(rev + 1);
  const approver = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
  const group = await createGroup(s.owner.ctx, { tenantId: s.tenantA, name: "finance-approvers" });
  await addGroupMember(s.owner.ctx, group.id, { email: approver.user.email });

  const bearer = (claims: Record<string, unknown> = {}) => s.issuer.sign({ sub: "carol", tenant: s.tenantA, client_id: "bank-app", scope: "bank", ...claims }, bankUri);
  async function transfer(token: string, args: { amount: number; to: string }) {
    const client = new Client({ name: "bank-client", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(bankUri), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
    try {
      await client.callTool({ name: "transfer", arguments: args });
      return { ok: true as const };
    } catch (err) {
      if (err instanceof McpError) return { ok: false as const, code: err.code, message: err.message, data: err.data as Record<string, unknown> };
      throw err;
    } finally {
      await client.close();
    }
  }
  return {
    s,
    bankServerId,
    bankUri,
    statelessUri,
    approver,
    executed,
    bearer,
    transfer,
    async stop() {
      await s.stop();
      await Promise.all([new Promise<void>((r) => bank.close(() => r())), new Promise<void>((r) => bank2.close(() => r()))]);
    },
  };
}
