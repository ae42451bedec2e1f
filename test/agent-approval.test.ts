/**
 * Human approval end to end (issue 16): a real agent, the control plane's
 * agent API over HTTP, a bank upstream on the official MCP SDK and the SDK's
 * own client. A transfer over the threshold waits with URLElicitationRequired
 * (-32042) naming the approval page; an approver approves through the
 * service the API calls; the identical retried call succeeds; another amount
 * is not covered; rejection and expiry deny with the reason; the stateless
 * era gets an input-required result; a plain forbid wins over an approval.
 */
import { randomUUID } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { approvalRequests, tools, users } from "@/db/schema";
import { addGroupMember, createGroup, decideApproval, getApproval, listApprovals, approvalListQuery } from "@/lib/approvals/service";
import { publishBundle } from "@/lib/bundles/service";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { URL_ELICITATION_REQUIRED } from "@/lib/enforcement/approval";
import { qualifiedUser } from "@/lib/enforcement/token";
import { updateFleet } from "@/lib/fleets/service";
import { createPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";
import { makeUser, uniq, type MadeUser } from "./db";

let s: AgentStack;
let bank: Server;
let bankServerId: string;
let bankUri: string;
let approver: MadeUser;
let requester: MadeUser;
const executed: { amount: number; to: string }[] = [];

/** A bank upstream: one `transfer` tool, stateless Streamable HTTP. */
async function startBank(): Promise<string> {
  bank = createHttpServer((req, res) => {
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
  return `http://127.0.0.1:${(bank.address() as AddressInfo).port}/mcp`;
}

const bearer = (claims: Record<string, unknown> = {}) => s.issuer.sign({ sub: "carol", tenant: s.tenantA, client_id: "bank-app", scope: "bank", ...claims }, bankUri);

async function connect(token: string) {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  const client = new Client({ name: "bank-client", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(bankUri), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return client;
}

/** Calls transfer; the JSON-RPC error (code, message, data) when refused. */
async function transfer(token: string, args: { amount: number; to: string }) {
  const c = await connect(token);
  try {
    return { ok: true as const, result: await c.callTool({ name: "transfer", arguments: args }) };
  } catch (err) {
    if (err instanceof McpError) return { ok: false as const, code: err.code, message: err.message, data: err.data as Record<string, unknown> };
    throw err;
  } finally {
    await c.close();
  }
}

const pendingOf = async (amount: number) => {
  const rows = await s.t.db.select().from(approvalRequests).where(eq(approvalRequests.serverId, bankServerId));
  return rows.filter((r) => (r.args as { amount?: number }).amount === amount);
};

beforeAll(async () => {
  s = await startAgentStack();
  const upstream = await startBank();
  const agentPort = new URL(s.resourceUri).port;
  bankUri = `http://127.0.0.1:${agentPort}/bank`;
  const server = await createServer(
    s.owner.ctx,
    createServerInput.parse({ tenantId: s.tenantA, name: uniq("Bank "), resourceUri: bankUri, upstreamUrl: upstream, scopes: ["bank"], issuers: [{ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"] }] }),
  );
  bankServerId = server!.id;
  await importCatalog(s.owner.ctx, bankServerId);
  for (const tool of await s.t.db.select().from(tools).where(eq(tools.serverId, bankServerId))) await approveTool(s.owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(s.owner.ctx, bankServerId, { baseVersion: 0, mapping: { bank: ["transfer"] } });
  await createPolicy(
    s.owner.ctx,
    {
      tenantId: s.tenantA,
      serverId: bankServerId,
      name: "Large transfers need finance",
      description: "",
      kind: "cedar",
      enabled: true,
      cedar: `@approval("finance-approvers")\nforbid (principal, action == Action::"call_tool", resource) when { context.args has amount && context.args.amount > 1000 };`,
    } as never,
  );
  await createPolicy(s.owner.ctx, { tenantId: s.tenantA, serverId: bankServerId, name: "No sanctioned payees", description: "", kind: "cedar", enabled: true, cedar: `forbid (principal, action, resource) when { context.args has to && context.args.to == "sanctioned" };` } as never);
  await updateFleet(s.owner.ctx, s.fleetId, { serverIds: [s.serverId, bankServerId] });
  const rev = s.agent.sync.current!.content.manifest.revision;
  await publishBundle(s.owner.ctx, s.fleetId, { note: "bank" }, s.kek);
  await s.waitRevision(rev + 1);
  approver = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
  // The requester also signs in to the dashboard, with the SSO identity its tokens carry.
  requester = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
  await s.t.db.update(users).set({ oidcIssuer: s.issuer.issuer, oidcSubject: "carol" }).where(eq(users.id, requester.user.id));
  const group = await createGroup(s.owner.ctx, { tenantId: s.tenantA, name: "finance-approvers" });
  await addGroupMember(s.owner.ctx, group.id, { email: approver.user.email });
  await addGroupMember(s.owner.ctx, group.id, { email: requester.user.email });
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await new Promise<void>((r) => (bank ? bank.close(() => r()) : r()));
});

describe("a call over the threshold waits for a person", () => {
  it("under the threshold runs; over it answers -32042 naming the approval page, and files one request", async () => {
    const token = await bearer();
    expect(await transfer(token, { amount: 10, to: "dave" })).toMatchObject({ ok: true });
    const r = await transfer(token, { amount: 5000, to: "dave" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe(URL_ELICITATION_REQUIRED);
    const el = (r.data.elicitations as { mode: string; url: string; elicitationId: string; message: string }[])[0]!;
    expect(el.mode).toBe("url");
    expect(el.url).toMatch(/\/approvals\/apr_/);
    expect(el.message).toMatch(/finance-approvers/);
    expect(executed.some((e) => e.amount === 5000)).toBe(false);
    // A retry before any decision finds the same request again.
    const again = await transfer(token, { amount: 5000, to: "dave" });
    expect(!again.ok && (again.data.elicitations as { elicitationId: string }[])[0]!.elicitationId).toBe(el.elicitationId);
    const rows = await pendingOf(5000);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: el.elicitationId, status: "requested", userId: qualifiedUser(s.issuer.issuer, "carol"), clientId: "bank-app", approvers: ["finance-approvers"] });
  });

  it("the requester cannot approve their own call; an outsider cannot see it; the approver's queue holds it", async () => {
    const [row] = await pendingOf(5000);
    await expect(decideApproval(requester.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/four-eyes/);
    const outsider = await makeUser(s.t.db, { memberships: [[s.tenantB, "admin"]] });
    await expect(getApproval(outsider.ctx, row!.id)).rejects.toThrow(/not found/);
    await expect(decideApproval(outsider.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/not found/);
    // A tenant admin who is in no approver group may read it but not decide it.
    const plainAdmin = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
    await expect(decideApproval(plainAdmin.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/finance-approvers/);
    const mine = await listApprovals(approver.ctx, approvalListQuery.parse({ view: "mine" }));
    expect(mine.items.map((i) => i.id)).toContain(row!.id);
    expect((await listApprovals(requester.ctx, approvalListQuery.parse({ view: "mine" }))).items.map((i) => i.id)).not.toContain(row!.id);
  });

  it("approved: the identical retried call succeeds at once; another amount is not covered", async () => {
    const token = await bearer();
    const [row] = await pendingOf(5000);
    const t0 = performance.now();
    await decideApproval(approver.ctx, row!.id, { decision: "approve", reason: "invoice 42" }, s.kek);
    await until(async () => (await transfer(token, { amount: 5000, to: "dave" })).ok, 5_000);
    console.log(`[agent-approval] approve → identical call executed: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(executed.filter((e) => e.amount === 5000)).toHaveLength(1);
    const other = await transfer(token, { amount: 5001, to: "dave" });
    expect(other).toMatchObject({ ok: false, code: URL_ELICITATION_REQUIRED });
    // Another user's identical call is another call.
    expect(await transfer(await bearer({ sub: "erin" }), { amount: 5000, to: "dave" })).toMatchObject({ ok: false, code: URL_ELICITATION_REQUIRED });
    await until(async () => (await s.t.db.select().from(approvalRequests).where(eq(approvalRequests.id, row!.id)))[0]!.status === "executed", 5_000);
  });

  it("a plain forbid wins over an approval", async () => {
    const token = await bearer();
    const r = await transfer(token, { amount: 7000, to: "sanctioned" });
    expect(r).toMatchObject({ ok: false, code: -32003 });
    expect(await pendingOf(7000)).toHaveLength(0);
  });

  it("rejection denies with the approver's reason", async () => {
    const token = await bearer();
    await transfer(token, { amount: 6000, to: "mallory" });
    const [row] = await pendingOf(6000);
    await decideApproval(approver.ctx, row!.id, { decision: "reject", reason: "unknown payee" }, s.kek);
    await until(async () => {
      const r = await transfer(token, { amount: 6000, to: "mallory" });
      return !r.ok && r.code === -32003 && /unknown payee/.test(String(r.data.reason));
    }, 5_000);
    expect(executed.some((e) => e.amount === 6000)).toBe(false);
  });

  it("an expired approval denies with the reason, and the retried call asks anew", async () => {
    const token = await bearer();
    await transfer(token, { amount: 8000, to: "dave" });
    const [row] = await pendingOf(8000);
    await decideApproval(approver.ctx, row!.id, { decision: "approve", reason: "" }, s.kek);
    await until(async () => (await transfer(token, { amount: 8000, to: "dave" })).ok, 5_000);
    // The approval window ends (set in the past, then a live republish carries it).
    await s.t.db.update(approvalRequests).set({ approvalExpiresAt: new Date(Date.now() - 1000) }).where(eq(approvalRequests.id, row!.id));
    const { republishLiveBundles } = await import("@/lib/bundles/service");
    await republishLiveBundles(s.t.db, "system", s.kek, [bankServerId], "test: expire");
    await until(async () => {
      const r = await transfer(token, { amount: 8000, to: "dave" });
      return !r.ok && r.code === URL_ELICITATION_REQUIRED && /expired at/.test(String((r.data.elicitations as { message: string }[])[0]!.message));
    }, 5_000);
    const rows = await pendingOf(8000);
    expect(rows.map((r) => r.status).sort()).toEqual(["executed", "requested"]);
  });

  it("the stateless era gets an input-required result with the same URL elicitation", async () => {
    const token = await bearer();
    const res = await fetch(bankUri, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "transfer" },
      body: JSON.stringify({ jsonrpc: "2.0", id: randomUUID(), method: "tools/call", params: { name: "transfer", arguments: { amount: 9000, to: "dave" }, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": { elicitation: { url: {} } } } } }),
    });
    const body = (await res.json()) as { result?: { resultType: string; inputRequests: Record<string, { method: string; params: { mode: string; url: string } }>; requestState: string }; error?: unknown };
    expect(body.error, JSON.stringify(body)).toBeUndefined();
    expect(body.result!.resultType).toBe("input_required");
    expect(body.result!.inputRequests.approval!).toMatchObject({ method: "elicitation/create", params: { mode: "url", url: expect.stringMatching(/\/approvals\/apr_/) } });
    expect(body.result!.requestState).toMatch(/^mandate-approval:apr_/);
  });
});
