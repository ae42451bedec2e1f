import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Issue 14: each policy has its own history with restore. An earlier version
// becomes the draft again through the same service as an edit (policy.restore
// in the trail), the editor shows it, and saving leads to publishing. The
// History's targets are named and link to the policy.
test("restore an earlier version of a policy from its History, then publish it", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  const fleetName = uniq("fleet");
  await json(await api.post("/api/v1/admin/fleets", { data: { name: fleetName, serverIds: [server.id] } }), 201);
  const v1 = `permit (principal, action == Action::"list_tools", resource);`;
  const v2 = `forbid (principal, action == Action::"list_tools", resource);`;
  const name = uniq("listing");
  const policy = await json<{ id: string; updatedAt: string }>(await api.post("/api/v1/admin/policies", { data: { tenantId: tenant.id, serverId: server.id, name, kind: "cedar", cedar: v1 } }), 201);
  await json(await api.patch(`/api/v1/admin/policies/${policy.id}`, { data: { cedar: v2, baseUpdatedAt: policy.updatedAt } }), 200);

  await page.goto(`/policies/${policy.id}`);
  const editor = page.locator('.cm-content[contenteditable="true"]');
  await expect(editor).toContainText("forbid");
  const rows = page.getByTestId("trail-row");
  await expect(rows).toHaveCount(2);
  // The newest version is the current one; the target is the policy's name, linking to it.
  await expect(rows.nth(0)).toContainText("policy.update");
  await expect(rows.nth(0).getByTestId("version-current")).toBeVisible();
  await expect(rows.nth(0).getByTestId("trail-target").getByRole("link", { name })).toHaveAttribute("href", `/policies/${policy.id}`);

  // Restore the version the creation left: asked once, then the editor shows it and offers to publish.
  await rows.nth(1).getByRole("button", { name: "Restore this version" }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toContainText("nothing is enforced until you publish");
  await dialog.getByRole("button", { name: "Restore", exact: true }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
  await expect(editor).toContainText("permit");
  await expect(editor).not.toContainText("forbid");
  await expect(page.getByText("Version restored as the draft")).toBeVisible();
  await expect(page.getByText("Unsaved changes")).toHaveCount(0);

  // The trail records the restore, which is now the current version.
  await expect(rows).toHaveCount(3);
  await expect(rows.nth(0)).toContainText("policy.restore");
  await expect(rows.nth(0).getByTestId("version-current")).toBeVisible();
  const saved = await json<{ cedar: string }>(await api.get(`/api/v1/admin/policies/${policy.id}`), 200);
  expect(saved.cedar).toBe(v1);

  // Publishing follows, as after an edit.
  await page
    .getByTestId("publish-next")
    .getByRole("link", { name: `Review and publish: ${fleetName}` })
    .click();
  await expect(page.getByRole("button", { name: /^Publish revision 1$/ })).toBeVisible();
});
