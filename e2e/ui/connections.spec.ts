import { randomBytes } from "node:crypto";
import { expect, request, test, type Page } from "@playwright/test";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Brokered per-user OAuth in the browser (docs/upstreams.md): an owner stores the entry through the vault's
// form, an agent of the fleet files a connect request through its own route (POST /api/v1/agent/connections/token,
// with its agent key, as agent/connections.ts does on a call), the user it names signs in with SSO, connects on
// /connect/<id> at the upstream's AS and disconnects on /connections; other users get the error, not the request.
//
// scripts/e2e.mjs starts the sandbox authorization server (oidc-provider) as the dashboard's SSO provider; it
// doubles here as the upstream's AS (open dynamic client registration, login and consent without a UI).
// The SSO account is bob (bob@sandbox.test): sso.spec.ts needs alice to have no Mandate user when it starts.
const issuer = process.env.OIDC_ISSUER ?? "";
const callback = `${baseURL}/api/v1/admin/connections/callback`;

/** Signs `page` (a fresh context) in through the dashboard's SSO as the sandbox account `login` (its login_hint). */
async function ssoSignIn(page: Page, login: string) {
  await page.goto("/login");
  const headers = { origin: new URL(baseURL).origin };
  const { csrfToken } = await json<{ csrfToken: string }>(await page.request.get("/api/auth/csrf"), 200);
  const started = await json<{ url: string }>(
    await page.request.post(`/api/auth/signin/oidc?login_hint=${encodeURIComponent(login)}`, { form: { csrfToken, callbackUrl: `${baseURL}/`, json: "true" }, headers }),
    200,
  );
  await page.goto(started.url);
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
}

test("a brokered entry from the vault form; the user an agent named connects on /connect/<id> and disconnects on /connections; other users get an error", async ({ page, browser }) => {
  expect(issuer, "OIDC_ISSUER (set by scripts/e2e.mjs)").toMatch(/^http/);
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  // bob is invited by e-mail; his first SSO sign-in links the sandbox identity <issuer>#bob to this user.
  await json(await api.post(`/api/v1/admin/tenants/${tenant.id}/members`, { data: { email: "bob@sandbox.test", role: "auditor" } }), 201);
  // An agent of a fleet that serves the server: its key is what the agent route checks.
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Edge"), serverIds: [server.id] } }), 201);
  const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
  const anon = await request.newContext({ baseURL });
  const { agentKey } = await json<{ agentKey: string }>(await anon.post("/api/v1/agent/enroll", { data: { token: enrollment.token, name: uniq("e2e-connect"), version: "e2e" } }), 201);
  const agent = await apiAs(agentKey);
  const askToken = (user: string) => agent.post("/api/v1/agent/connections/token", { data: { serverId: server.id, tenantId: tenant.id, user } });
  // Mandate's client at the upstream's AS, registered with the connections callback as its redirect URI.
  const reg = await fetch(`${issuer}/reg`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], redirect_uris: [callback], token_endpoint_auth_method: "client_secret_basic" }),
  });
  expect(reg.status).toBe(201);
  const client = (await reg.json()) as { client_id: string; client_secret: string };

  // 1. The owner stores the entry through the form.
  const name = uniq("Per-user upstream");
  await page.goto("/vault");
  await page.getByRole("button", { name: "New credential" }).first().click();
  const form = page.getByRole("dialog");
  await form.getByLabel("Server").selectOption({ label: server.name });
  await form.getByLabel("For tenant").selectOption({ label: tenant.name });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Kind").selectOption("oauth_user_brokered");
  // Brokered: no header to choose (the Authorization header), the upstream AS's fields instead.
  await expect(form.getByLabel("Header (default: Authorization)")).toHaveCount(0);
  await form.getByLabel("Client id").fill(client.client_id);
  await form.getByLabel("Client secret").fill(client.client_secret);
  // Neither the authorization endpoint nor the issuer: a sentence next to the field, nothing sent.
  await form.getByRole("button", { name: "Store credential" }).click();
  await expect(form.getByText("Authorization endpoint or the issuer is required: the upstream's authorization endpoint, or its issuer to discover it.").first()).toBeVisible();
  expect((await json<{ items: unknown[] }>(await api.get(`/api/v1/admin/vault?serverId=${server.id}`), 200)).items).toHaveLength(0);
  // The API's own field error (not a URL) is put next to the field too, and the typed secret is cleared.
  await form.getByLabel("Issuer (optional)").fill(issuer);
  await form.getByLabel("Token endpoint").fill("not a url");
  await form.getByRole("button", { name: "Store credential" }).click();
  await expect(form.getByText("Token endpoint must be a URL.").first()).toBeVisible();
  await expect(form.getByTestId("form-error")).toContainText("Token endpoint must be a URL");
  await expect(form.getByLabel("Client secret")).toHaveValue("");
  // Issuer only (the authorization endpoint is discovered from its metadata) and the token endpoint.
  await form.getByLabel("Token endpoint").fill(`${issuer}/token`);
  await form.getByLabel("Scope (optional)").fill("openid");
  await form.getByLabel("Client secret").fill(client.client_secret);
  await form.getByRole("button", { name: "Store credential" }).click();
  await expect(page).toHaveURL(/\/vault\/vlt_/);
  await expect(page.getByText("Brokered per-user OAuth (each user connects)").first()).toBeVisible();
  expect(await page.content()).not.toContain(client.client_secret);
  const entries = await json<{ items: { kind: string; placement: { in: string; name: string }; oauth: Record<string, string> }[] }>(await api.get(`/api/v1/admin/vault?serverId=${server.id}`), 200);
  expect(entries.items.map((e) => [e.kind, e.placement, e.oauth.issuer, e.oauth.tokenUrl, e.oauth.authorizationUrl])).toEqual([
    ["oauth_user_brokered", { in: "header", name: "authorization" }, issuer, `${issuer}/token`, undefined],
  ]);

  // 2. A call of bob's reaches the agent, which has no token for him: it files a connect request.
  const bobKey = `${issuer}#bob`;
  const filed = await json<{ status: string; requestId: string; url: string; reason: string }>(await askToken(bobKey), 200);
  expect(filed).toMatchObject({ status: "connect", reason: "none", url: `${baseURL}/connect/${filed.requestId}` });
  // And one for alice, whom bob must not see.
  const alices = await json<{ requestId: string }>(await askToken(`${issuer}#alice`), 200);

  const bobCtx = await browser.newContext({ storageState: { cookies: [], origins: [] } });
  try {
    const bob = await bobCtx.newPage();
    await ssoSignIn(bob, "bob");

    // 3. Bob opens his link: who, which server and tenant; Connect runs the code flow at the AS and comes back.
    await bob.goto(new URL(filed.url).pathname);
    const card = bob.getByText(`Connect your account at ${server.name}`);
    await expect(card).toBeVisible();
    await expect(bob.getByText(`(tenant ${tenant.name})`)).toBeVisible();
    await expect(bob.getByText(bobKey, { exact: true })).toBeVisible();
    await bob.getByRole("button", { name: "Connect" }).click();
    await expect(bob).toHaveURL(new RegExp(`/connections\\?connected=${server.id}$`));
    await expect(bob.getByText("Connected. Call the tool again from your MCP client.")).toBeVisible();
    const mine = bob.getByRole("row").filter({ hasText: server.name }).first();
    await expect(mine).toContainText("active");
    // The agent now gets bob's access token (the page never showed it).
    const ok = await json<{ status: string; accessToken: string }>(await askToken(bobKey), 200);
    expect(ok.status).toBe("ok");
    expect(await bob.content()).not.toContain(ok.accessToken);
    // The request is spent: its page says so instead of offering Connect again.
    await bob.goto(new URL(filed.url).pathname);
    await expect(bob.getByText("Connected. Call the tool again from your client.")).toBeVisible();
    await expect(bob.getByRole("button", { name: "Connect" })).toHaveCount(0);

    // 4. Bob disconnects: the row says so and the agent is asked to have him connect again.
    await bob.goto("/connections");
    await mine.getByRole("button", { name: "Disconnect" }).click();
    await bob.getByRole("dialog").getByRole("button", { name: "Disconnect" }).click();
    await expect(mine).toContainText("disconnected");
    await expect(mine.getByRole("button", { name: "Disconnect" })).toHaveCount(0);
    expect(await json<{ status: string; reason: string }>(await askToken(bobKey), 200)).toMatchObject({ status: "connect", reason: "disconnected" });

    // 5. Another SSO user's request: bob gets the error (not found), no Connect.
    await bob.goto(`/connect/${alices.requestId}`);
    // (role=alert with text: Next's route announcer is an empty alert too)
    await expect(bob.getByRole("alert").filter({ hasText: "Connect request not found" })).toBeVisible();
    await expect(bob.getByRole("button", { name: "Connect" })).toHaveCount(0);
  } finally {
    await bobCtx.close();
  }

  // 6. The owner (signed in with a password, no SSO identity) opening bob's link gets the error page too.
  await page.goto(new URL(filed.url).pathname);
  await expect(page.getByRole("alert").filter({ hasText: "Sign in with single sign-on as the user who called the tool" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Connect" })).toHaveCount(0);
  await expect(page.getByText(bobKey)).toHaveCount(0);
  // A forged id is the same not-found as another user's.
  await page.goto(`/connect/cnr_${randomBytes(16).toString("hex")}`);
  await expect(page.getByRole("alert").filter({ hasText: "Connect request not found" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Connect" })).toHaveCount(0);
  await anon.dispose();
});
