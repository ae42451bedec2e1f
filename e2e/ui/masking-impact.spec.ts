import { expect, test } from "@playwright/test";
import { uuidv7 } from "uuidv7";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// The publish page's impact analysis on real shipped decisions, and a masking
// rule added on the server page reaching the fleet's live bundle.

test("impact of a draft on recent traffic, and a masking rule published to the fleet at once", async ({ page }) => {
  test.setTimeout(120_000);
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
  const tools = await json<{ items: { id: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
  for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
  await json(await api.put(`/api/v1/admin/servers/${server.id}/scopes`, { data: { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"] } } }), 200);
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: uniq("Impact"), serverIds: [server.id] } }), 201);
  const published = await json<{ revision: number }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "impact e2e" } }), 201);

  // An enrolled agent reports 4 allowed get_ticket calls and 2 list_tickets calls.
  const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
  const enrolled = (await (
    await fetch(`${baseURL}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment.token, name: uniq("impact-agent"), version: "e2e" }),
    })
  ).json()) as { agentKey: string };
  const line = (tool: string, args: Record<string, unknown>) => ({
    id: uuidv7(),
    bundleRevision: published.revision,
    tenantId: tenant.id,
    serverId: server.id,
    method: "tools/call",
    tool,
    user: "alice",
    client: "claude",
    scopes: ["tickets:read"],
    outcome: "allow",
    reason: "allowed by policy",
    determining: [],
    args,
  });
  const lines = [...[1, 2, 3, 4].map((i) => line("get_ticket", { id: `T-${i}` })), line("list_tickets", {}), line("list_tickets", { status: "open" })];
  const shipped = await fetch(`${baseURL}/api/v1/agent/decisions`, {
    method: "POST",
    headers: { authorization: `Bearer ${enrolled.agentKey}`, "content-type": "application/x-ndjson" },
    body: lines.map((l) => JSON.stringify(l)).join("\n"),
  });
  expect(shipped.status, await shipped.clone().text()).toBeLessThan(300);

  // The draft stops granting get_ticket: exactly those 4 calls would flip allow → deny.
  await json(await api.put(`/api/v1/admin/servers/${server.id}/scopes`, { data: { baseVersion: 1, mapping: { "tickets:read": ["list_tickets"] } } }), 200);
  await page.goto(`/fleets/${fleet.id}`);
  const panel = page.getByTestId("impact-panel");
  await panel.getByRole("button", { name: "Run" }).click();
  await expect(panel.getByTestId("impact-allow-to-deny")).toHaveText("4");
  await expect(panel.getByTestId("impact-deny-to-allow")).toHaveText("0");
  await expect(panel.getByTestId("impact-result")).toContainText("get_ticket");

  // A masking rule: hash get_ticket's id. It is a live section: the fleet gets a new signed revision at once.
  await page.goto(`/servers/${server.id}/masking`);
  await page.getByLabel("Tool").selectOption("get_ticket");
  await page.getByLabel("Argument paths (one per line)").fill("id");
  await page.getByLabel("Mode").selectOption("hash");
  await page.getByRole("button", { name: "Add rule" }).click();
  await expect(page.getByRole("status")).toContainText("republished");
  const list = await json<{ activeRevision: number }>(await api.get(`/api/v1/admin/fleets/${fleet.id}/bundles`), 200);
  expect(list.activeRevision).toBeGreaterThan(published.revision);
  const live = await json<{ content: { masking: { serverId: string; tool: string; paths: string[]; mode: string }[] } }>(
    await api.get(`/api/v1/admin/fleets/${fleet.id}/bundles/${list.activeRevision}`),
    200,
  );
  expect(live.content.masking).toEqual([{ serverId: server.id, tool: "get_ticket", paths: ["id"], mode: "hash" }]);
});
