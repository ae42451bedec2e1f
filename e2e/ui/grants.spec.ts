import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";
import { clicker } from "../journeys";

// Grants: a click on a user or a client filters (and the filter is in the
// address), tabs are in the address (reload and Back keep them), several grants
// revoke at once, one user's page lists everything they delegated, and nothing
// here changes the global tenant switcher.

test("grants filter by click, keep tabs in the address, revoke several, and show one user's delegations", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api, uniq("Grants"));
  const server = await createServer(api, tenant.id);
  const [ann, ben] = [`https://idp.e2e.test/#${uniq("ann")}`, `https://idp.e2e.test/#${uniq("ben")}`];
  const [mail, notes] = [uniq("mail-app"), uniq("notes-app")];
  const grants = [
    { serverId: server.id, userId: ann, clientId: mail, scopes: ["tickets:read"] },
    { serverId: server.id, userId: ann, clientId: notes, scopes: ["tickets:read"] },
    { serverId: server.id, userId: ben, clientId: mail, scopes: ["tickets:write"] },
  ];
  await json(await api.post("/api/v1/admin/grants/import", { data: { tenantId: tenant.id, grants } }), 200);
  await api.dispose();
  const switcher = page.locator("#tenant-switcher");
  const rowsOf = (u: string) => page.getByTestId(`grant-row-${u}`);

  // Tabs live in the address: Clients, choose this page's tenant, reload, Back.
  await page.goto("/grants");
  await expect(switcher).toHaveValue("");
  await page.getByRole("tab", { name: "Clients" }).click();
  await expect(page).toHaveURL(/tab=clients/);
  await page.getByLabel("Tenant", { exact: true }).last().selectOption(tenant.id);
  await expect(page).toHaveURL(new RegExp(`tenant=${tenant.id}`));
  await expect(page.getByText("Require client approval")).toBeVisible();
  await expect(page.getByTestId("page-tenant")).toContainText(tenant.name);
  // The global switcher did not move.
  await expect(switcher).toHaveValue("");
  await page.reload();
  await expect(page.getByRole("tab", { name: "Clients" })).toHaveAttribute("aria-selected", "true");
  await expect(page.getByText("Require client approval")).toBeVisible();
  await page.getByRole("tab", { name: "Grants" }).click();
  await expect(page.getByRole("tab", { name: "Grants" })).toHaveAttribute("aria-selected", "true");
  await page.goBack();
  await expect(page.getByRole("tab", { name: "Clients" })).toHaveAttribute("aria-selected", "true");
  await page.getByRole("tab", { name: "Grants" }).click();

  // A click on a user filters to that user; a click on a client to that client; Back undoes it.
  await expect(rowsOf(ann)).toHaveCount(2);
  await expect(rowsOf(ben)).toHaveCount(1);
  await rowsOf(ben).getByRole("button", { name: ben }).click();
  await expect(page).toHaveURL(/user=/);
  await expect(page.getByPlaceholder("User (exact id)")).toHaveValue(ben);
  await expect(rowsOf(ann)).toHaveCount(0);
  await expect(rowsOf(ben)).toHaveCount(1);
  await page.goBack();
  await expect(rowsOf(ann)).toHaveCount(2);
  await rowsOf(ann).filter({ hasText: notes }).getByRole("button", { name: notes }).click();
  await expect(page).toHaveURL(/client=/);
  await expect(rowsOf(ann)).toHaveCount(1);
  await expect(rowsOf(ben)).toHaveCount(0);
  await page.getByRole("button", { name: "Clear filters" }).click();
  await expect(rowsOf(ann)).toHaveCount(2);

  // Several at once: both of Ann's grants.
  const ui = clicker(page, "revoke-several");
  for (const c of [mail, notes]) await ui.click(rowsOf(ann).filter({ hasText: c }).getByRole("checkbox"));
  await expect(page.getByTestId("selection-bar")).toContainText("2 selected");
  await ui.shot("selected");
  await ui.click(page.getByTestId("revoke-selected"));
  const dialog = page.getByRole("dialog");
  await expect(dialog).toContainText(mail);
  await expect(dialog).toContainText(notes);
  await ui.click(dialog.getByRole("button", { name: "Revoke" }));
  await expect(dialog).toBeHidden();
  await expect(rowsOf(ann).getByText("revoked")).toHaveCount(2);
  await expect(rowsOf(ben).getByText("active")).toBeVisible();
  await ui.shot("revoked");
  console.log(`[journey] revoke two grants at once: ${ui.count} clicks`);

  // One user's page: everything Ben delegated, and revoke all of it.
  const user = clicker(page, "revoke-user");
  await user.click(rowsOf(ben).getByRole("link", { name: "Everything this user delegated" }));
  await expect(page).toHaveURL(/\/grants\/user\?id=/);
  await expect(page.getByRole("heading", { name: /^User ben-/ })).toBeVisible();
  await expect(page.getByTestId("user-summary")).toContainText("Active grants1");
  await expect(rowsOf(ben)).toHaveCount(1);
  await user.shot("user");
  await user.click(page.getByTestId(`revoke-user-${tenant.id}`));
  await user.click(page.getByRole("dialog").getByRole("button", { name: "Revoke" }));
  await expect(rowsOf(ben).getByText("revoked")).toBeVisible();
  await expect(page.getByTestId("user-summary")).toContainText("Active grants0");
  console.log(`[journey] revoke everything of one user from the grants list: ${user.count} clicks`);
  await expect(switcher).toHaveValue("");
});
