/**
 * A bank behind a real agent, for the approval tests and bench/approval.ts:
 * the agent stack of agent-proc-harness.ts plus a second server whose
 * upstream (official MCP SDK, stateless Streamable HTTP) has one `transfer`
 * tool, the scope `bank`, an `@approval("finance-approvers")` forbid over
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
  const bankUri = `http://127.0.0.1:${new URL(s.resourceUri).port}/bank`;
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({ tenantId: s.tenantA, name: uniq("Bank "), resourceUri: bankUri, upstreamUrl: upstream, scopes: ["bank"], issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }] }),
  );
  const bankServerId = server!.id;
  await importCatalog(s.owner.ctx, bankServerId);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, bankServerId))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, bankServerId, { baseVersion: 0, mapping: { bank: ["transfer"] } });
  const policy = (name: string, cedar: string) => createPolicy(s.owner.ctx, { tenantId: s.tenantA, serverId: bankServerId, name, description: "", kind: "cedar", enabled: true, cedar } as never);
  await policy("Large transfers need finance", `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource) when { context.args has amount && context.args.amount > 1000 };`);
  await policy("No sanctioned payees", `forbid (principal, action, resource) when { context.args has to && context.args.to == "sanctioned" };`);
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, bankServerId] });
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
    approver,
    executed,
    bearer,
    transfer,
    async stop() {
      await s.stop();
      await new Promise<void>((r) => bank.close(() => r()));
    },
  };
}
