import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { apiAs, baseURL, json, ownerToken, sandboxURL, uniq } from "../helpers";

// Revocation end to end: a real agent (child process) enrolled in a fleet serves
// the sandbox upstream under steady load (a call every ~20 ms) with a token of
// (user, client); an admin revokes the grant in the browser; the agent refuses
// the token (401 invalid_token) after the live bundle republishes. Prints the ms.

const listen = (s: Server) => new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
async function freePort() {
  const s = createHttpServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

test("a grant revoked in the browser is refused by the agent under load", async ({ page }) => {
  test.setTimeout(180_000);
  const api = await apiAs(ownerToken());
  const tenant = await json<{ id: string; name: string }>(await api.post("/api/v1/admin/tenants", { data: { name: uniq("Revoke") } }), 201);

  // An authorization server's signing key, its JWKS over HTTP.
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "e2e-key", alg: "ES256", use: "sig" };
  const jwks = createHttpServer((req, res) => (req.url === "/jwks" ? res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })) : res.writeHead(404).end()));
  const issuerBase = `http://127.0.0.1:${await listen(jwks)}`;
  const issuer = `${issuerBase}/`;

  const agentPort = await freePort();
  const resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  const user = uniq("alice");
  // Users are namespaced by their issuer (iss#sub): grants, revocations and the grants page use this id.
  const userId = `${issuer}#${user}`;
  const clientId = uniq("e2e-client");
  const sign = () =>
    new SignJWT({ sub: user, tenant: tenant.id, client_id: clientId, scope: "tickets:read" })
      .setProtectedHeader({ alg: "ES256", kid: "e2e-key", typ: "at+jwt" })
      .setIssuer(issuer)
      .setAudience(resourceUri)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(privateKey);

  let agent: ChildProcess | null = null;
  const dataDir = mkdtempSync(path.join(tmpdir(), "mandate-e2e-agent-"));
  let loadRunning = false;
  try {
    // The server, its catalogue approved and mapped, a fleet serving it, the first bundle.
    const server = await json<{ id: string }>(
      await api.post("/api/v1/admin/servers", {
        data: {
          tenantId: tenant.id,
          name: uniq("Tickets"),
          resourceUri,
          upstreamUrl: `${sandboxURL}/mcp`,
          scopes: ["tickets:read", "tickets:write"],
          issuers: [{ issuer, jwksUri: `${issuerBase}/jwks`, discovery: false, algorithms: ["ES256"] }],
        },
      }),
      201,
    );
    await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
    const tools = await json<{ items: { id: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
    for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
    await json(
      await api.put(`/api/v1/admin/servers/${server.id}/scopes`, {
        data: { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } },
      }),
      200,
    );
    const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Edge"), serverIds: [server.id] } }), 201);
    const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
    await json(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "revoke e2e" } }), 201);
    const keys = await (await fetch(`${baseURL}/api/v1/signing-keys`)).text();

    // A real agent process, enrolled in the fleet, long-polling the control plane.
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
        "e2e-revoke",
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

    // An MCP session through the agent with the (user, client) token.
    const token = await sign();
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(resourceUri, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } } }),
    });
    await init.text();
    expect(init.status).toBe(200);
    const session = init.headers.get("mcp-session-id");
    const sessionHeaders = { ...headers, ...(session ? { "mcp-session-id": session } : {}) };
    await fetch(resourceUri, { method: "POST", headers: sessionHeaders, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) }).then((r) => r.text());

    // Steady load: one tools/call every ~20 ms, every answer recorded.
    const calls: { at: number; status: number; error: string }[] = [];
    loadRunning = true;
    const load = (async () => {
      let id = 1;
      while (loadRunning) {
        const res = await fetch(resourceUri, {
          method: "POST",
          headers: sessionHeaders,
          body: JSON.stringify({ jsonrpc: "2.0", id: id++, method: "tools/call", params: { name: "get_ticket", arguments: { id: "T-100" } } }),
        });
        const body = await res.text();
        calls.push({ at: Date.now(), status: res.status, error: res.status === 401 ? (JSON.parse(body) as { error: string }).error : "" });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await expect.poll(() => calls.filter((c) => c.status === 200).length, { timeout: 15_000 }).toBeGreaterThan(10);

    // The grant, learned from the decisions the agent ships; imported if it has not shipped in time.
    const learned = await expect
      .poll(async () => (await json<{ items: unknown[] }>(await api.get(`/api/v1/admin/grants?tenantId=${tenant.id}&userId=${encodeURIComponent(userId)}`), 200)).items.length, { timeout: 20_000 })
      .toBe(1)
      .then(
        () => true,
        () => false,
      );
    if (!learned) {
      await json(await api.post("/api/v1/admin/grants/import", { data: { tenantId: tenant.id, grants: [{ serverId: server.id, userId, clientId, scopes: ["tickets:read"] }] } }), 200);
    }
    console.log(`[revoke] grant ${learned ? "learned from shipped decisions" : "imported (decisions not shipped within 20 s)"}`);

    // Revoke it in the browser.
    await page.goto("/grants");
    await page.getByPlaceholder("User (exact id)").fill(userId);
    // The filter applies after a short debounce: wait for it, so the list is not refetched under the click.
    await expect(page.locator('[data-testid^="grant-row-"]')).toHaveCount(1);
    const row = page.getByTestId(`grant-row-${userId}`);
    await expect(row).toBeVisible();
    await expect(row.getByText("active")).toBeVisible();
    await row.getByRole("button", { name: "Revoke" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Reason (optional)").fill("e2e: device lost");
    const clicked = Date.now();
    await dialog.getByRole("button", { name: "Revoke" }).click();

    await expect.poll(() => calls.some((c) => c.at >= clicked && c.status === 401), { timeout: 10_000, intervals: [10] }).toBe(true);
    const first = calls.find((c) => c.at >= clicked && c.status === 401)!;
    expect(first.error).toBe("invalid_token");
    console.log(`[revoke] click → first rejected call: ${first.at - clicked} ms`);
    await expect(row.getByText("revoked")).toBeVisible();

    // From then on the old token is refused, every call.
    await new Promise((r) => setTimeout(r, 500));
    loadRunning = false;
    await load;
    const after = calls.filter((c) => c.at > first.at);
    expect(after.length).toBeGreaterThan(5);
    expect(after.every((c) => c.status === 401 && c.error === "invalid_token")).toBe(true);

    // A token issued after the revocation (the user authorized the client again) works.
    await new Promise((r) => setTimeout(r, 1100)); // iat is in whole seconds
    const fresh = await fetch(resourceUri, {
      method: "POST",
      headers: { ...headers, authorization: `Bearer ${await sign()}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } } }),
    });
    await fresh.text();
    expect(fresh.status).toBe(200);

    // The history shows it, with the reason.
    await page.getByRole("tab", { name: "Revocations" }).click();
    await expect(page.getByTestId("revocation-row").filter({ hasText: "e2e: device lost" })).toBeVisible();
  } finally {
    loadRunning = false;
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once("exit", r));
      agent.kill("SIGTERM");
      await exited;
    }
    await new Promise((r) => jwks.close(r));
    rmSync(dataDir, { recursive: true, force: true });
    await api.dispose();
  }
});
