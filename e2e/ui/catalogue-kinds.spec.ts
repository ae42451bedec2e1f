import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken } from "../helpers";

// Issue 11: resources, templates and prompts sit beside tools in the server's catalogue,
// and the rule builder writes rules on them with their own actions.
test("the catalogue shows each kind; a rule can target prompts", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/tools`, { data: { name: "refund", inputSchema: { type: "object", properties: {} } } }), 201);

  await page.goto(`/servers/${server.id}/tools`);
  await expect(page.getByTestId("tool-row-refund")).toBeVisible();
  await page.getByLabel("Show").selectOption("prompt");
  await expect(page.getByText("No prompts in the catalogue")).toBeVisible();
  await expect(page).toHaveURL(/kind=prompt/);

  await page.goto(`/policies/new?tenant=${tenant.id}&server=${server.id}&kind=rule`);
  await page.getByLabel("Name", { exact: true }).fill("prompts for everyone");
  await expect(page.getByRole("checkbox", { name: "Call tool (call_tool)" })).toBeVisible();
  await page.getByLabel("Applies to").selectOption("prompt");
  await expect(page.getByRole("checkbox", { name: "Call tool (call_tool)" })).toHaveCount(0);
  await expect(page.getByRole("checkbox", { name: "Get prompt (get_prompt)" })).toBeChecked();
  await page.getByRole("checkbox", { name: "List prompts (list_prompts)" }).check();
  await page.getByRole("checkbox", { name: "low" }).check();
  await expect(page.getByTestId("cedar-preview")).toContainText('Action::"get_prompt", Action::"list_prompts"');
});
