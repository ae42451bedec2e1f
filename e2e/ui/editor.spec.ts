import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";
import { clicker } from "../journeys";

// The Cedar editor (CodeMirror 6): completion from the server's generated
// schema offers the named tool's arguments (and not another tool's), the
// validator's issues show inline, and the policy saves.

test("the Cedar editor completes a tool's argument from the schema and marks issues inline", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api, uniq("Editor"));
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
  const tools = await json<{ items: { id: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
  for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
  await api.dispose();

  const ui = clicker(page, "cedar-editor");
  await page.goto(`/policies/new?tenant=${tenant.id}&server=${server.id}&kind=cedar`);
  await page.getByLabel("Name", { exact: true }).fill("no payroll tickets");
  const editor = page.getByTestId("cedar-editor");
  await expect(editor).toBeVisible();
  await ui.click(editor);
  // Arguments are optional in the schema: Cedar's validator wants `has` before the read.
  await editor.fill(`forbid (principal, action == Action::"call_tool", resource == Tool::"${server.id}/create_ticket") when { context.args has project && `);
  await page.keyboard.press("End");
  await page.keyboard.type("context.args.");
  const popup = page.locator(".cm-tooltip-autocomplete");
  await expect(popup).toBeVisible();
  // create_ticket's arguments, and not close_ticket's "resolution".
  for (const a of ["priority", "project", "title"]) await expect(popup.getByRole("option", { name: a, exact: false }).first()).toBeVisible();
  await expect(popup).not.toContainText("resolution");
  await ui.shot("completion");
  await page.keyboard.type("proj");
  await page.keyboard.press("Enter");
  await page.keyboard.type(' == "payroll" };');
  await expect(editor).toContainText('context.args.project == "payroll"');
  await expect(page.getByText(/Valid against the schema of/)).toBeVisible();

  // An argument no approved tool declares: the validator's issue is marked in the text and the gutter.
  await page.keyboard.press("Control+End");
  await page.keyboard.type('\nforbid (principal, action, resource) when { context.args.nope == "x" };');
  await expect(page.locator(".cm-lintRange-error").first()).toBeVisible();
  await expect(page.locator(".cm-lint-marker-error").first()).toBeVisible();
  await ui.shot("issue");
  // Remove the broken line, then create the policy.
  await page.keyboard.press("Shift+Home");
  await page.keyboard.press("Backspace");
  await page.keyboard.press("Backspace");
  await expect(page.locator(".cm-lintRange-error")).toHaveCount(0);
  await expect(page.getByText(/Valid against the schema of/)).toBeVisible();
  await ui.click(page.getByRole("button", { name: "Create policy" }));
  await expect(page).toHaveURL(/\/policies\/pol_[^?]+\?created=1/);
  await expect(page.getByTestId("cedar-editor")).toContainText('context.args.project == "payroll"');
  await ui.shot("saved");
});
