import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { expect, request, type APIRequestContext, type Page } from "@playwright/test";

export const baseURL = process.env.E2E_BASE_URL ?? "http://127.0.0.1:3000";
export const sandboxURL = process.env.E2E_SANDBOX_URL ?? "http://127.0.0.1:3100";
export const owner = { email: process.env.MANDATE_OWNER_EMAIL ?? "owner@e2e.test", password: process.env.MANDATE_OWNER_PASSWORD ?? "" };
export const authDir = "e2e/.auth";

export const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

/** An API client authenticated with a Mandate API token. */
export const apiAs = (token: string) => request.newContext({ baseURL, extraHTTPHeaders: { authorization: `Bearer ${token}` } });

export const ownerToken = (): string => (JSON.parse(readFileSync(`${authDir}/tokens.json`, "utf8")) as { owner: string }).owner;

export async function json<T = Record<string, unknown>>(res: Awaited<ReturnType<APIRequestContext["get"]>>, status: number): Promise<T> {
  const body = await res.text();
  expect(res.status(), body).toBe(status);
  return (body ? JSON.parse(body) : null) as T;
}

export async function createTenant(api: APIRequestContext, name = uniq("tenant")) {
  return json<{ id: string; name: string }>(await api.post("/api/v1/admin/tenants", { data: { name } }), 201);
}

/** Creates a user as a tenant member, and sets its password through its invitation link as the invitee would. */
export async function createMember(api: APIRequestContext, tenantId: string, role: "admin" | "auditor") {
  const email = `${uniq(role)}@e2e.test`;
  const password = randomBytes(12).toString("base64url");
  const added = await json<{ invitation: { url: string } }>(await api.post(`/api/v1/admin/tenants/${tenantId}/members`, { data: { email, role } }), 201);
  await acceptInvitation(added.invitation.url, password);
  return { email, password };
}

/** Completes an invitation link (its fragment is the token) with a chosen password. */
export async function acceptInvitation(url: string, password: string) {
  const ctx = await request.newContext({ baseURL });
  await json(await ctx.post("/api/auth/invitation", { data: { token: new URL(url).hash.slice(1), password } }), 200);
  await ctx.dispose();
}

/** An API token created by a signed-in user through the dashboard session (same-origin). */
export async function tokenFor(user: { email: string; password: string }, body: Record<string, unknown>): Promise<string> {
  const ctx = await request.newContext({ baseURL, extraHTTPHeaders: { origin: baseURL } });
  const csrf = await json<{ csrfToken: string }>(await ctx.get("/api/auth/csrf"), 200);
  const r = await ctx.post("/api/auth/callback/credentials", { form: { email: user.email, password: user.password, csrfToken: csrf.csrfToken, json: "true" } });
  expect(r.status()).toBeLessThan(400);
  const created = await json<{ token: string }>(await ctx.post("/api/v1/admin/tokens", { data: body }), 201);
  await ctx.dispose();
  return created.token;
}

export async function createServer(api: APIRequestContext, tenantId: string, extra: Record<string, unknown> = {}) {
  const name = uniq("server");
  return json<{ id: string; name: string; resourceUri: string }>(
    await api.post("/api/v1/admin/servers", {
      data: { tenantId, name, resourceUri: `https://mcp.e2e.test/${name}`, upstreamUrl: `${sandboxURL}/mcp`, scopes: ["tickets:read", "tickets:write"], ...extra },
    }),
    201,
  );
}

export async function signIn(page: Page, email: string, password: string) {
  await page.goto("/login");
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
}

export const sandbox = {
  async setDescription(tool: string, description: string) {
    const r = await fetch(`${sandboxURL}/_sandbox/tools/${tool}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ description }) });
    expect(r.status).toBe(200);
  },
  async reset() {
    await fetch(`${sandboxURL}/_sandbox/reset`, { method: "POST" });
  },
};
