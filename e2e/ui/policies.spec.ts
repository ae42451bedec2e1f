import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Issue journey: write a rule, see its Cedar, add a failing test, see publish
// blocked, fix it, publish, see the revision and the diff, roll back.
test("a rule, its tests and a fleet's signed revisions", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  const tool = (name: string, properties: object) => api.post(`/api/v1/admin/servers/${server.id}/tools`, { data: { name, inputSchema: { type: "object", properties } } });
  await json(await tool("refund", { amount: { type: "integer" } }), 201);
  await json(await tool("list_tickets", { status: { type: "string" } }), 201);
  await json(await api.put(`/api/v1/admin/servers/${server.id}/scopes`, { data: { baseVersion: 0, mapping: { "tickets:write": ["refund"], "tickets:read": ["list_tickets"] } } }), 200);
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("fleet"), serverIds: [server.id] } }), 201);

  // Write a rule and see the Cedar it compiles to.
  await page.goto(`/policies/new?tenant=${tenant.id}&server=${server.id}&kind=rule`);
  await page.getByLabel("Name", { exact: true }).fill("refund limit");
  await page.getByLabel("Forbid (deny)").check();
  await page.getByRole("checkbox", { name: "refund" }).check();
  await page.getByRole("button", { name: "Add condition" }).click();
  await page.getByLabel("Argument 1").selectOption("amount");
  await page.getByLabel("Operator").selectOption("gt");
  await page.getByLabel("Value", { exact: true }).fill("100");
  await expect(page.getByTestId("cedar-preview")).toContainText('context.args["amount"] > 100');
  await expect(page.getByTestId("cedar-preview")).toContainText("forbid");
  await page.getByRole("button", { name: "Create rule" }).click();
  await expect(page).toHaveURL(/\/policies\/pol_[0-9a-f]{32}/);
  await expect(page.getByTestId("cedar-saved")).toContainText(`resource in [Tool::"${server.id}/refund"]`);

  // A test that fails: a refund of 500 expected to pass.
  await page.goto(`/policies?tenant=${tenant.id}&server=${server.id}`);
  await expect(page.getByTestId("policy-row-refund limit")).toBeVisible();
  await page.getByRole("button", { name: "Add test" }).first().click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Test name").fill("big refund");
  await dialog.getByLabel("User").fill("alice");
  await dialog.getByRole("checkbox", { name: "tickets:write" }).check();
  await dialog.getByLabel("Tool").selectOption("refund");
  await dialog.getByLabel("Arguments (JSON object)").fill('{"amount": 500}');
  await dialog.getByLabel("Allow").check();
  await dialog.getByRole("button", { name: "Add test" }).click();
  await page.getByRole("button", { name: "Run tests" }).click();
  await expect(page.getByTestId("test-result-big refund")).toHaveAttribute("data-passed", "false");
  await expect(page.getByTestId("tests-summary")).toContainText("1 failed");

  // The failing test holds back its tenant's part of the draft, and says why (it blocks no other tenant's change).
  await page.goto(`/fleets/${fleet.id}`);
  await expect(page.getByTestId("publish-held-back")).toContainText('test "big refund" expected allow, got deny');
  await expect(page.getByTestId("publish-blockers")).toHaveCount(0);

  // Fix the test, publish.
  await page.goto(`/policies?tenant=${tenant.id}&server=${server.id}`);
  await page.getByRole("button", { name: "Edit test big refund" }).click();
  await page.getByRole("dialog").getByLabel("Deny").check();
  await page.getByRole("dialog").getByRole("button", { name: "Save test" }).click();
  await page.getByRole("button", { name: "Run tests" }).click();
  await expect(page.getByTestId("test-result-big refund")).toHaveAttribute("data-passed", "true");
  await page.goto(`/fleets/${fleet.id}`);
  await page.getByLabel("Note (optional)").fill("refund limit");
  await page.getByRole("button", { name: "Publish revision 1" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Publish", exact: true }).click();
  await expect(page.getByTestId("revision-1")).toContainText("live");

  // A second revision, and its diff against the first.
  await json(
    await api.post("/api/v1/admin/policies", {
      data: { tenantId: tenant.id, serverId: server.id, name: "readers", kind: "cedar", cedar: `permit (principal in Group::"readers", action, resource == Tool::"${server.id}/list_tickets");` },
    }),
    201,
  );
  await page.getByRole("button", { name: "Recompile" }).click();
  await page.getByRole("button", { name: "Publish revision 2" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Publish", exact: true }).click();
  await expect(page.getByTestId("revision-2")).toContainText("live");
  await page.getByTestId("revision-2").getByRole("button", { name: "Diff with 1" }).click();
  await expect(page.getByTestId("bundle-diff").getByTestId("diff-policies-added")).toContainText("readers");

  // Roll back to revision 1: published again as revision 3.
  await page.getByTestId("revision-1").getByRole("button", { name: "Roll back" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Roll back to 1" }).click();
  await expect(page.getByTestId("revision-3")).toContainText("rollback to 1");
  await expect(page.getByTestId("revision-3")).toContainText("live");
  const bundles = await json<{ activeRevision: number }>(await api.get(`/api/v1/admin/fleets/${fleet.id}/bundles`), 200);
  expect(bundles.activeRevision).toBe(3);
});
