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

  test("an SSO account maps to the invited Mandate user with the same verified e-mail, with that user's roles; the invitation dies", async ({ page }) => {
    const api = await apiAs(ownerToken());
    const tenant = await createTenant(api);
    // Added by e-mail: the user has no password, only an invitation link (issue 17.7).
    const added = await json<{ invitation: { url: string } }>(await api.post(`/api/v1/admin/tenants/${tenant.id}/members`, { data: { email: ssoEmail, role: "auditor" } }), 201);

    await page.goto("/login");
    await page.getByRole("button", { name: "Continue with Sandbox SSO" }).click();
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
    const me = await json<{ user: { email: string }; tenants: { id: string; role: string }[] }>(await page.request.get("/api/v1/admin/me"), 200);
    expect(me.user.email).toBe(ssoEmail);
    expect(me.tenants.map((t) => [t.id, t.role])).toEqual([[tenant.id, "auditor"]]);
    // The auditor role holds through SSO too: a write is refused.
    const res = await page.request.patch(`/api/v1/admin/tenants/${tenant.id}`, { data: { name: "renamed" }, headers: { origin: new URL(page.url()).origin } });
    expect(res.status()).toBe(403);
    // The link the admin was given no longer sets a password: the SSO link closed it.
    const accept = await page.request.post("/api/auth/invitation", { data: { token: new URL(added.invitation.url).hash.slice(1), password: randomBytes(12).toString("base64url") } });
    expect(accept.status()).toBe(400);
  });

  test("an invitee chooses their password in the browser through the invitation link, which works once", async ({ page, browser }) => {
    const api = await apiAs(ownerToken());
    const tenant = await createTenant(api);
    const email = `${randomBytes(4).toString("hex")}@e2e.test`;
    const added = await json<{ invitation: { url: string } }>(await api.post(`/api/v1/admin/tenants/${tenant.id}/members`, { data: { email, role: "admin" } }), 201);
    // The invitee opens the link and chooses a password in the browser.
    const password = randomBytes(12).toString("base64url");
    await page.goto(new URL(added.invitation.url).pathname + new URL(added.invitation.url).hash);
    await page.getByLabel("New password").fill(password);
    await page.getByLabel("Repeat it").fill(password);
    await page.getByRole("button", { name: "Set password" }).click();
    await expect(page.getByText(`Your password is set for ${email}.`)).toBeVisible();
    expect(page.url()).not.toContain("#");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
    const ctx = await browser.newContext({ storageState: { cookies: [], origins: [] } });
    try {
      // The link works once.
      const again = await ctx.request.post("/api/auth/invitation", { data: { token: new URL(added.invitation.url).hash.slice(1), password: randomBytes(12).toString("base64url") } });
      expect(again.status()).toBe(400);
    } finally {
      await ctx.close();
    }
  });
});
