import { randomBytes } from "node:crypto";
import { expect, test } from "@playwright/test";
import { apiAs, createTenant, json, ownerToken } from "../helpers";

// scripts/e2e.mjs starts the sandbox authorization server (oidc-provider) as the dashboard's OIDC provider;
// it signs in its default account, alice@sandbox.test, with a verified e-mail.
const ssoEmail = "alice@sandbox.test";

test.describe.serial("admin sign-in through OIDC", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("an SSO account with no Mandate user is refused (no auto-provisioning)", async ({ page }) => {
    await page.goto("/login");
    await page.getByRole("button", { name: "Continue with Sandbox SSO" }).click();
    await expect(page).toHaveURL(/\/login\?.*error=AccessDenied/);
    await expect(page.getByText("Your account has no access to Mandate.")).toBeVisible();
    await expect(page.getByRole("navigation", { name: "Main" })).toHaveCount(0);
  });

  test("an SSO account maps to the Mandate user with the same verified e-mail, with that user's roles", async ({ page }) => {
    const api = await apiAs(ownerToken());
    const tenant = await createTenant(api);
    await json(await api.post("/api/v1/admin/users", { data: { email: ssoEmail, password: randomBytes(12).toString("base64url"), role: "member" } }), 201);
    await json(await api.post(`/api/v1/admin/tenants/${tenant.id}/members`, { data: { email: ssoEmail, role: "auditor" } }), 201);

    await page.goto("/login");
    await page.getByRole("button", { name: "Continue with Sandbox SSO" }).click();
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
    const me = await json<{ user: { email: string }; tenants: { id: string; role: string }[] }>(await page.request.get("/api/v1/admin/me"), 200);
    expect(me.user.email).toBe(ssoEmail);
    expect(me.tenants.map((t) => [t.id, t.role])).toEqual([[tenant.id, "auditor"]]);
    // The auditor role holds through SSO too: a write is refused.
    const res = await page.request.patch(`/api/v1/admin/tenants/${tenant.id}`, { data: { name: "renamed" }, headers: { origin: new URL(page.url()).origin } });
    expect(res.status()).toBe(403);
  });
});
