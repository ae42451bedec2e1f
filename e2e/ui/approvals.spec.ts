import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { z } from "zod";
import { apiAs, baseURL, json, owner, ownerToken, uniq } from "../helpers";

// Human approval end to end: a real agent (child process) in front of a bank upstream (official MCP SDK,
// one `transfer` tool) with an @approval("…") forbid over 1000. A transfer of 5000 waits with
// URLElicitationRequired (-32042) naming the approval page; the approver opens that page in the
// browser and approves; the identical retried call runs. Prints click → executed in ms.

const listen = (s: Server) => new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
async function freePort() {
  const s = createHttpServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

test("an approver approves in the browser and the retried call succeeds", async ({ page }) => {
  test.setTimeout(180_000);
  const api = await apiAs(ownerToken());
  const tenant = await json<{ id: string; name: string }>(await api.post("/api/v1/admin/tenants", { data: { name: uniq("Approve") } }), 201);

  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "e2e-key", alg: "ES256", use: "sig" };
  const jwks = createHttpServer((req, res) => (req.url === "/jwks" ? res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })) : res.writeHead(404).end()));
  const issuerBase = `http://127.0.0.1:${await listen(jwks)}`;
  const issuer = `${issuerBase}/`;

  const executed: number[] = [];
  const bank = createHttpServer((req, res) => {
    void (async () => {
      const server = new McpServer({ name: "bank", version: "1.0.0" });
      server.registerTool("transfer", { description: "Move money", inputSchema: { amount: z.number().int(), to: z.string().max(64) } }, async ({ amount }) => {
        executed.push(amount);
        return { content: [{ type: "text" as const, text: `sent ${amount}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      await server.connect(transport);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      await transport.handleRequest(req, res, chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined);
    })().catch(() => res.writeHead(500).end());
  });
  const bankUrl = `http://127.0.0.1:${await listen(bank)}/mcp`;

  const agentPort = await freePort();
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const sign = () =>
    new SignJWT({ sub: "carol", tenant: tenant.id, client_id: "bank-app", scope: "bank" })
      .setProtectedHeader({ alg: "ES256", kid: "e2e-key", typ: "at+jwt" })
      .setIssuer(issuer)
      .setAudience(resourceUri)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(privateKey);

  let agent: ChildProcess | null = null;
  const dataDir = mkdtempSync(path.join(tmpdir(), "mandate-e2e-approval-"));
  try {
    const server = await json<{ id: string }>(
      await api.post("/api/v1/admin/servers", {
        data: {
          tenantId: tenant.id,
          name: uniq("Bank"),
          resourceUri,
          upstreamUrl: bankUrl,
          scopes: ["bank"],
          issuers: [{ issuer, jwksUri: `${issuerBase}/jwks`, discovery: false, algorithms: ["ES256"] }],
        },
      }),
      201,
    );
    await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
    const tools = await json<{ items: { id: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
    for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
    await json(await api.put(`/api/v1/admin/servers/${server.id}/scopes`, { data: { baseVersion: 0, mapping: { bank: ["transfer"] } } }), 200);
    const group = uniq("finance");
    await json(
      await api.post("/api/v1/admin/policies", {
        data: {
          tenantId: tenant.id,
          serverId: server.id,
          name: "Large transfers need approval",
          kind: "cedar",
          cedar: `@approval("${group}")\nforbid (principal, action == Action::"call_tool", resource) when { context.args has amount && context.args.amount > 1000 };`,
        },
      }),
      201,
    );
    const g = await json<{ id: string }>(await api.post("/api/v1/admin/approver-groups", { data: { tenantId: tenant.id, name: group } }), 201);
    await json(await api.post(`/api/v1/admin/approver-groups/${g.id}/members`, { data: { email: owner.email } }), 201);
    const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Edge"), serverIds: [server.id] } }), 201);
    const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
    await json(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "approval e2e" } }), 201);
    const keys = await (await fetch(`${baseURL}/api/v1/signing-keys`)).text();

    agent = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "agent/main.ts",
        "--control-plane",
        baseURL,
        "--enrollment-token",
        enrollment.token,
        "--port",
        String(agentPort),
        "--data-dir",
        dataDir,
        "--wait",
        "30",
        "--name",
        "e2e-approval",
      ],
      { env: { ...process.env, MANDATE_BUNDLE_KEYS: keys }, stdio: ["ignore", "ignore", "inherit"] },
    );
    await expect
      .poll(
        () =>
          fetch(`http://127.0.0.1:${agentPort}/readyz`).then(
            (r) => r.status,
            () => 0,
          ),
        { timeout: 60_000 },
      )
      .toBe(200);

    // An MCP session (handshake era) through the agent.
    const headers = { authorization: `Bearer ${await sign()}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(resourceUri, {
      method: "POST",
      headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: { protocolVersion: "2025-11-25", capabilities: { elicitation: { url: {} } }, clientInfo: { name: "e2e", version: "1" } },
      }),
    });
    await init.text();
    expect(init.status).toBe(200);
    const session = init.headers.get("mcp-session-id");
    const sessionHeaders = { ...headers, ...(session ? { "mcp-session-id": session } : {}) };
    await fetch(resourceUri, { method: "POST", headers: sessionHeaders, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) }).then((r) => r.text());
    let id = 1;
    const transfer = async (amount: number) => {
      const res = await fetch(resourceUri, {
        method: "POST",
        headers: sessionHeaders,
        body: JSON.stringify({ jsonrpc: "2.0", id: id++, method: "tools/call", params: { name: "transfer", arguments: { amount, to: "dave" } } }),
      });
      const text = await res.text();
      const line = text.startsWith("{") ? text : (text.split("\n").find((l) => l.startsWith("data: ")) ?? "data: {}").slice(6);
      return JSON.parse(line) as { result?: unknown; error?: { code: number; data?: { elicitations?: { url: string; message: string }[] } } };
    };

    expect((await transfer(10)).result).toBeDefined();
    const held = await transfer(5000);
    expect(held.error?.code).toBe(-32042);
    const elicitation = held.error!.data!.elicitations![0]!;
    expect(elicitation.message).toContain(group);
    expect(executed).not.toContain(5000);

    // The approver opens the page the elicitation names and approves.
    await page.goto(new URL(elicitation.url).pathname);
    const card = page.locator('[data-testid^="approval-apr_"]');
    await expect(card.getByText("transfer", { exact: true })).toBeVisible();
    await expect(card.getByText('"amount": 5000')).toBeVisible();
    await card.getByLabel("Reason").fill("e2e: invoice checked");
    const clicked = Date.now();
    await card.getByRole("button", { name: "Approve" }).click();
    await expect.poll(async () => (await transfer(5000)).result !== undefined, { timeout: 10_000, intervals: [20] }).toBe(true);
    console.log(`[approvals] click → identical call executed: ${Date.now() - clicked} ms`);
    expect(executed.filter((a) => a === 5000)).toHaveLength(1);
    await expect(card.getByText(/approved|executed/).first()).toBeVisible();

    // Another amount is another call: it waits again.
    expect((await transfer(5001)).error?.code).toBe(-32042);
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once("exit", r));
      agent.kill("SIGTERM");
      await exited;
    }
    await new Promise((r) => jwks.close(r));
    await new Promise((r) => bank.close(r));
    rmSync(dataDir, { recursive: true, force: true });
    await api.dispose();
  }
});
