import { expect, test } from "@playwright/test";
import { apiAs, createMember, createServer, createTenant, json, ownerToken, signIn } from "../helpers";

test.describe("roles in the browser", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("an auditor sees a server but cannot change anything", async ({ page }) => {
    const api = await apiAs(ownerToken());
    const tenant = await createTenant(api);
    const server = await createServer(api, tenant.id);
    await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
    const auditor = await createMember(api, tenant.id, "auditor");

    await signIn(page, auditor.email, auditor.password);
    await page.goto(`/servers/${server.id}`);
    await expect(page.getByRole("heading", { name: server.name })).toBeVisible();
    await expect(page.getByRole("button", { name: /delete/i })).toHaveCount(0);
    await expect(page.getByRole("button", { name: /save/i })).toHaveCount(0);
    await page.goto(`/servers/${server.id}/tools`);
    await expect(page.getByTestId("tool-row-list_tickets")).toBeVisible();
    await expect(page.getByRole("button", { name: "Import from upstream" })).toHaveCount(0);
    await expect(page.getByRole("button", { name: "Add tool" })).toHaveCount(0);
    await page.goto(`/servers/${server.id}/scopes`);
    await expect(page.getByRole("button", { name: "Save mapping" })).toHaveCount(0);
    await page.goto(`/tenants/${tenant.id}`);
    await expect(page.getByRole("button", { name: "Add member" })).toHaveCount(0);

    // The browser session cannot write through the API either.
    const res = await page.request.patch(`/api/v1/admin/servers/${server.id}`, { data: { description: "auditor was here" }, headers: { origin: new URL(page.url()).origin } });
    expect(res.status()).toBe(403);
  });

  test("a tenant admin neither sees nor reaches another tenant's server", async ({ page }) => {
    const api = await apiAs(ownerToken());
    const [a, b] = [await createTenant(api), await createTenant(api)];
    const serverA = await createServer(api, a.id);
    const serverB = await createServer(api, b.id);
    const adminB = await createMember(api, b.id, "admin");

    await signIn(page, adminB.email, adminB.password);
    await page.goto("/servers");
    await expect(page.getByTestId(`server-row-${serverB.name}`)).toBeVisible();
    await expect(page.getByTestId(`server-row-${serverA.name}`)).toHaveCount(0);
    await page.goto(`/servers/${serverA.id}`);
    await expect(page.getByText(/not found/i).first()).toBeVisible();
    await expect(page.getByText(serverA.name)).toHaveCount(0);
    await page.goto(`/tenants/${a.id}`);
    await expect(page.getByText(/not found/i).first()).toBeVisible();
    const res = await page.request.get(`/api/v1/admin/servers/${serverA.id}`);
    expect(res.status()).toBe(404);
  });
});
