import { readFileSync } from "node:fs";
import { expect, test } from "@playwright/test";
import { uuidv7 } from "uuidv7";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// The decision log in the browser: decisions reported through the agent API
// (a real enrolled agent key), filtered, opened, followed to the simulator
// with the request filled in, and exported (the file holds the filtered rows).

test("filter the decision log, open a decision, replay it in the simulator, export", async ({ page }) => {
  test.setTimeout(120_000);
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
  const tools = await json<{ items: { id: string; name: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
  for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
  await json(await api.put(`/api/v1/admin/servers/${server.id}/scopes`, { data: { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"] } } }), 200);
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Audit"), serverIds: [server.id] } }), 201);
  const published = await json<{ revision: number }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "audit e2e" } }), 201);
  const bundle = await json<{ content: { policies: Record<string, { name: string }>; cedar: { policies: Record<string, string> } } }>(
    await api.get(`/api/v1/admin/fleets/${fleet.id}/bundles/${published.revision}`),
    200,
  );
  const policyId = Object.keys(bundle.content.cedar.policies)[0]!;

  // An agent of the fleet (enrolled with a one-time token) reports decisions.
  const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
  const enrolled = (await (
    await fetch(`${baseURL}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment.token, name: uniq("audit-agent"), version: "e2e" }),
    })
  ).json()) as { agentKey: string };
  const alice = uniq("alice");
  const bob = uniq("bob");
  const line = (over: Record<string, unknown>) => ({
    id: uuidv7(),
    bundleRevision: published.revision,
    tenantId: tenant.id,
    serverId: server.id,
    method: "tools/call",
    tool: "get_ticket",
    user: alice,
    client: "claude",
    scopes: ["tickets:read"],
    outcome: "allow",
    reason: "allowed by scope tickets:read",
    determining: [policyId],
    args: { id: "T-100" },
    latencyUs: 120,
    ...over,
  });
  const lines = [
    ...Array.from({ length: 5 }, (_, i) => line({ args: { id: `T-${i}` } })),
    ...Array.from({ length: 3 }, () => line({ user: bob, tool: "close_ticket", outcome: "deny", reason: "no scope grants close_ticket", determining: [], args: { id: "T-9", comment: "=2+2" } })),
  ];
  const shipped = await fetch(`${baseURL}/api/v1/agent/decisions`, {
    method: "POST",
    headers: { authorization: `Bearer ${enrolled.agentKey}`, "content-type": "application/x-ndjson" },
    body: lines.map((l) => JSON.stringify(l)).join("\n"),
  });
  expect(shipped.status, await shipped.clone().text()).toBeLessThan(300);

  // Filter: this tenant, then bob's denials.
  await page.goto(`/audit?tenant=${tenant.id}`);
  await expect(page.getByTestId("decision-row")).toHaveCount(8);
  await page.getByLabel("Outcome", { exact: true }).selectOption("deny");
  await expect(page.getByTestId("decision-row")).toHaveCount(3);
  await expect(page).toHaveURL(/outcome=deny/);
  await page.getByLabel("Outcome", { exact: true }).selectOption("");
  await page.getByRole("searchbox", { name: "User" }).fill(alice);
  await expect(page.getByTestId("decision-row")).toHaveCount(5);
  await page.getByRole("searchbox", { name: "Text in arguments" }).fill("T-3");
  await expect(page.getByTestId("decision-row")).toHaveCount(1);
  await expect(page.getByTestId("audit-totals")).toContainText("1 allowed");

  // The list names the tenant and the determining policy (not their ids).
  const policyName = bundle.content.policies[policyId]?.name;
  await expect(page.getByTestId("decision-row").first().getByRole("link", { name: tenant.name })).toHaveAttribute("href", `/tenants/${tenant.id}`);
  // Here the determining policy is a generated scope rule: named as the bundle names it.
  expect(policyName).toBeTruthy();
  await expect(page.getByTestId("decision-policies").first()).toHaveText(policyName!);

  // Group by user: counts per user under the filter; a group narrows the list.
  await page.getByLabel("Group decisions by").selectOption("user");
  await expect(page.getByTestId("group-row")).toHaveCount(1);
  await expect(page.getByTestId("group-row")).toContainText(alice);
  // The exact window counted: the last 24 h widened to whole UTC hours, in UTC.
  await expect(page.getByTestId("group-window")).toContainText(/Counted over \d{4}-\d\d-\d\d \d\d:00 – \d{4}-\d\d-\d\d \d\d:00 UTC: the filter's window widened to whole UTC hours/);

  // Save this view; it comes back after clearing the filter.
  await page.getByLabel("Name of the view to save").fill("alice T-3");
  await page.getByRole("button", { name: "Save view" }).click();
  await page.goto(`/audit?tenant=${tenant.id}`);
  await expect(page.getByTestId("decision-row")).toHaveCount(8);
  await page.getByTestId("saved-views").getByRole("button", { name: "alice T-3", exact: true }).click();
  await expect(page.getByTestId("decision-row")).toHaveCount(1);

  // Open it: reason, claims, the policy's Cedar text at that revision.
  await page
    .getByTestId("decision-row")
    .first()
    .getByRole("link", { name: /^Open decision/ })
    .click();
  await expect(page.getByTestId("decision-latency")).toHaveText("0.1 ms");
  await expect(page.getByTestId("decision-reason")).toHaveText("allowed by scope tickets:read");
  await expect(page.getByTestId("decision-claims")).toContainText(alice);
  await expect(page.getByTestId("decision-args")).toContainText('"T-3"');
  await expect(page.getByTestId("determining-policy")).toContainText(policyId);
  await expect(page.getByTestId("determining-policy")).toContainText(bundle.content.cedar.policies[policyId]!.split("\n")[0]!.trim());

  // Back to the log keeps the filter.
  await page.getByRole("link", { name: "Back to the log" }).click();
  await expect(page).toHaveURL(/q=T-3/);
  await expect(page.getByTestId("decision-row")).toHaveCount(1);
  await page
    .getByTestId("decision-row")
    .first()
    .getByRole("link", { name: /^Open decision/ })
    .click();

  // Follow it to the simulator: the request is filled in.
  await page.getByRole("link", { name: "Open in simulator" }).click();
  await expect(page).toHaveURL(/\/simulator\?/);
  await expect(page.getByLabel("User", { exact: true })).toHaveValue(alice);
  await expect(page.getByLabel("Client", { exact: true })).toHaveValue("claude");
  await expect(page.getByLabel("Arguments (JSON object)")).toHaveValue(/"T-3"/);

  // Export the denials as CSV: the file holds exactly the filtered rows, formulas neutralised.
  await page.goto(`/audit?tenant=${tenant.id}&outcome=deny`);
  await expect(page.getByTestId("decision-row")).toHaveCount(3);
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
  expect(download.suggestedFilename()).toMatch(/^decisions-\d{8}-\d{4}\.csv$/);
  const csv = readFileSync((await download.path())!, "utf8");
  const records = csv.trim().split("\r\n");
  expect(records).toHaveLength(1 + 3);
  expect(records.slice(1).every((r) => r.includes(",deny,") && r.includes(bob))).toBe(true);
  expect(csv).not.toContain(alice);
  expect(csv).toContain(`"{""id"":""T-9"",""comment"":""=2+2""}"`);
  const [nd] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export NDJSON" }).click()]);
  const rows = readFileSync((await nd.path())!, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { user: string; outcome: string });
  expect(rows).toHaveLength(3);
  expect(rows.every((r) => r.user === bob && r.outcome === "deny")).toBe(true);
});
