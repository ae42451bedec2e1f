import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Unsaved work is never lost silently: a link away from an edited policy asks
// first, and Escape in a modal holding typed text asks before closing.

test("leaving an edited policy and pressing Escape in a filled modal both ask first", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api, uniq("Unsaved"));
  const server = await createServer(api, tenant.id);
  const policy = await json<{ id: string }>(
    await api.post("/api/v1/admin/policies", {
      data: { tenantId: tenant.id, serverId: server.id, name: uniq("draft"), kind: "cedar", cedar: `forbid (principal, action == Action::"call_tool", resource);` },
    }),
    201,
  );
  const userId = `https://idp.e2e.test/#${uniq("erin")}`;
  await json(await api.post("/api/v1/admin/grants/import", { data: { tenantId: tenant.id, grants: [{ serverId: server.id, userId, clientId: uniq("app"), scopes: [] }] } }), 200);
  await api.dispose();

  const asked: string[] = [];
  let answer = false;
  page.on("dialog", async (d) => {
    asked.push(d.message());
    if (answer) await d.accept();
    else await d.dismiss();
  });

  await page.goto(`/policies/${policy.id}`);
  const editor = page.getByTestId("cedar-editor");
  await editor.click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("\n// a thought in progress");
  await expect(page.getByText("Unsaved changes")).toBeVisible();
  const crumb = page.getByRole("navigation", { name: "Breadcrumb" }).getByRole("link", { name: "Policies" });
  await crumb.click();
  await expect.poll(() => asked.length).toBe(1);
  expect(asked[0]).toMatch(/unsaved changes will be lost/);
  await expect(page).toHaveURL(new RegExp(`/policies/${policy.id}`));
  await expect(editor).toContainText("a thought in progress");
  answer = true;
  await crumb.click();
  await expect(page).not.toHaveURL(new RegExp(`/policies/${policy.id}`));

  // A modal: Escape with nothing typed closes at once; with a reason typed it asks.
  answer = false;
  asked.length = 0;
  await page.goto(`/grants?user=${encodeURIComponent(userId)}`);
  const row = page.getByTestId(`grant-row-${userId}`);
  await row.getByRole("button", { name: "Revoke", exact: true }).click();
  const dialog = page.getByRole("dialog");
  await expect(dialog).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  expect(asked).toEqual([]);
  await row.getByRole("button", { name: "Revoke", exact: true }).click();
  await dialog.getByLabel("Reason (optional)").fill("half-written reason");
  await page.keyboard.press("Escape");
  await expect.poll(() => asked.length).toBe(1);
  expect(asked[0]).toMatch(/Discard what you entered/);
  await expect(dialog).toBeVisible();
  await expect(dialog.getByLabel("Reason (optional)")).toHaveValue("half-written reason");
  answer = true;
  await dialog.getByLabel("Reason (optional)").press("End");
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
});
