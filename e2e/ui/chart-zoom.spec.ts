import { randomBytes } from "node:crypto";
import { expect, test } from "@playwright/test";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Issue 14: the decision log's chart has readable axes (hours for a day) and
// zooms: dragging across it narrows the log to the selected time range (kept
// in the address), "Reset zoom" goes back to the preset.

/** A UUIDv7 whose time is `ms` (the decision's time is its id's). */
function uuidv7At(ms: number): string {
  const t = ms.toString(16).padStart(12, "0");
  const r = randomBytes(10).toString("hex");
  return `${t.slice(0, 8)}-${t.slice(8)}-7${r.slice(0, 3)}-${(8 | (parseInt(r[3]!, 16) & 3)).toString(16)}${r.slice(4, 7)}-${r.slice(7, 19)}`;
}

test("drag across the decision chart to zoom the log into a time range, then reset", async ({ page }) => {
  test.setTimeout(90_000);
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Zoom"), serverIds: [server.id] } }), 201);
  const published = await json<{ revision: number }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "zoom e2e" } }), 201);
  const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
  const enrolled = (await (
    await fetch(`${baseURL}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment.token, name: uniq("zoom-agent"), version: "e2e" }),
    })
  ).json()) as { agentKey: string };

  // Three decisions about 20 hours ago, four about 3 hours ago.
  const now = Date.now();
  const line = (at: number, user: string) => ({
    id: uuidv7At(at),
    bundleRevision: published.revision,
    tenantId: tenant.id,
    serverId: server.id,
    method: "tools/call",
    tool: "list_tickets",
    user,
    client: "claude",
    scopes: [],
    outcome: "deny",
    reason: "no scope grants list_tickets",
    determining: [],
    args: {},
    latencyUs: 100,
  });
  // At half past an hour (UTC, as the buckets), so each group is one bar.
  const halfPast = (ms: number) => Math.floor(ms / 3600_000) * 3600_000 + 30 * 60_000;
  const [early, late] = [halfPast(now - 20 * 3600_000), halfPast(now - 3 * 3600_000)];
  const lines = [...[0, 1, 2].map((i) => line(early + i * 60_000, "early")), ...[0, 1, 2, 3].map((i) => line(late + i * 60_000, "late"))];
  const shipped = await fetch(`${baseURL}/api/v1/agent/decisions`, {
    method: "POST",
    headers: { authorization: `Bearer ${enrolled.agentKey}`, "content-type": "application/x-ndjson" },
    body: lines.map((l) => JSON.stringify(l)).join("\n"),
  });
  expect(shipped.status, await shipped.clone().text()).toBeLessThan(300);

  await page.goto(`/audit?tenant=${tenant.id}`);
  await expect(page.getByTestId("decision-row")).toHaveCount(7);
  const chart = page.getByTestId("outcome-chart");
  await expect(chart.getByTestId("chart-bar")).toHaveCount(2);
  // Readable axes: hour ticks for a day, and a counts axis.
  const xTicks = chart.getByTestId("chart-x-tick");
  expect(await xTicks.count()).toBeGreaterThanOrEqual(3);
  await expect(xTicks.first()).toHaveText(/^\d{1,2}:\d\d|^[A-Z][a-z]{2} \d{1,2}$/);
  await expect(chart.getByTestId("chart-y-tick").last()).toHaveText("5");

  // Drag across the later bar: the log narrows to it, the window is in the address.
  const bars = chart.getByTestId("chart-bar");
  const lateBar = (await bars.nth(0).getAttribute("data-t"))! < (await bars.nth(1).getAttribute("data-t"))! ? bars.nth(1) : bars.nth(0);
  const box = (await lateBar.boundingBox())!;
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x - 6, y);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, y, { steps: 4 });
  await expect(chart.getByTestId("chart-selection")).toBeVisible();
  await page.mouse.move(box.x + box.width + 6, y, { steps: 4 });
  await page.mouse.up();
  await expect(page).toHaveURL(/range=custom/);
  await expect(page).toHaveURL(/from=.*&to=/);
  await expect(page.getByTestId("decision-row")).toHaveCount(4);
  await expect(page.getByTestId("decision-row").filter({ hasText: "early" })).toHaveCount(0);
  // Zoomed into about an hour: minute ticks.
  await expect(chart.getByTestId("chart-x-tick").first()).toHaveText(/^\d{1,2}:\d\d/);

  // The zoom survives a reload (it is in the address); Reset zoom goes back to the last 24 hours.
  await page.reload();
  await expect(page.getByTestId("decision-row")).toHaveCount(4);
  await page.getByRole("button", { name: "Reset zoom" }).click();
  await expect(page).not.toHaveURL(/range=custom/);
  await expect(page.getByTestId("decision-row")).toHaveCount(7);
});
