import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Issue 14: saving a policy leads to publishing it. Edit a published policy's
// Cedar → save → "Review and publish" → the draft diff shows the changed line
// with the changed token highlighted → publish, asked once.
test("edit a policy, review its diff and publish it", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/tools`, { data: { name: "list_tickets", inputSchema: { type: "object", properties: { status: { type: "string" } } } } }), 201);
  const fleetName = uniq("fleet");
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: fleetName, serverIds: [server.id] } }), 201);
  const cedar = (status: string) => `permit (principal, action == Action::"call_tool", resource == Tool::"${server.id}/list_tickets")\nwhen { context.client == "${status}" };`;
  const policy = await json<{ id: string }>(
    await api.post("/api/v1/admin/policies", { data: { tenantId: tenant.id, serverId: server.id, name: "open tickets", kind: "cedar", cedar: cedar("open") } }),
    201,
  );
  await json(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "first" } }), 201);

  // Edit: one word of the condition.
  await page.goto(`/policies/${policy.id}`);
  const editor = page.locator('.cm-content[contenteditable="true"]');
  await editor.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.insertText(cedar("pending"));
  await expect(page.getByText("Unsaved changes")).toBeVisible();
  await page.getByRole("button", { name: "Save changes" }).click();

  // Saving offers the fleet that serves this server.
  await page
    .getByTestId("publish-next")
    .getByRole("link", { name: `Review and publish: ${fleetName}` })
    .click();
  await expect(page).toHaveURL(new RegExp(`/fleets/${fleet.id}#publish$`));

  // The draft diff: one changed policy, the changed token marked, no phantom server change.
  const diff = page.getByTestId("bundle-diff");
  await expect(diff.getByTestId("diff-policies-changed")).toHaveCount(1);
  await expect(diff.getByTestId("diff-servers-changed")).toHaveCount(0);
  await expect(diff.getByTestId("diff-token-removed")).toHaveText(["open"]);
  await expect(diff.getByTestId("diff-token-added")).toHaveText(["pending"]);
  // The changed line is within the page's width (lines wrap, nothing off-screen to the right).
  const line = diff.locator('[data-diff-line="add"]').first();
  const box = await line.boundingBox();
  expect(box!.x + box!.width).toBeLessThanOrEqual((page.viewportSize()?.width ?? 1280) + 1);

  // Publish asks once.
  await page.getByRole("button", { name: "Publish revision 2" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByTestId("publish-confirm")).toContainText("1 policy changed");
  await dialog.getByRole("button", { name: "Publish", exact: true }).click();
  await expect(page.getByTestId("revision-2")).toContainText("live");
  await expect(page.getByRole("dialog")).toHaveCount(0);
  const bundles = await json<{ activeRevision: number }>(await api.get(`/api/v1/admin/fleets/${fleet.id}/bundles`), 200);
  expect(bundles.activeRevision).toBe(2);

  // The policy's history shows the edit as a diff.
  await page.goto(`/policies/${policy.id}`);
  const row = page.getByTestId("trail-row").filter({ hasText: "policy.update" });
  await expect(row).toHaveCount(1);
  await row.getByRole("button", { name: "Details" }).click();
  await expect(page.getByTestId("trail-diff").getByTestId("diff-token-added")).toHaveText(["pending"]);
});
