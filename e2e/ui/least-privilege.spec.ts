import { expect, test } from "@playwright/test";
import { uuidv7 } from "uuidv7";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

// Least privilege in the browser: a server whose scope tickets:read maps
// list_tickets and get_ticket, traffic (shipped by a real enrolled agent key)
// that only ever calls get_ticket; the page shows the unused mapping with its
// evidence, the remedy's impact on that traffic (0 allow → deny flips), and
// creating the draft saves a narrowed mapping for the fleet to publish.

test("see a least-privilege finding with its evidence and create its remedy draft", async ({ page }) => {
  test.setTimeout(120_000);
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api, uniq("LeastPriv"));
  const server = await createServer(api, tenant.id);
  await json(await api.post(`/api/v1/admin/servers/${server.id}/import`), 200);
  const tools = await json<{ items: { id: string; name: string; latestVersion: { id: string } }[] }>(await api.get(`/api/v1/admin/servers/${server.id}/tools`), 200);
  for (const t of tools.items) await json(await api.post(`/api/v1/admin/tools/${t.id}/approve`, { data: { versionId: t.latestVersion.id } }), 200);
  await json(
    await api.put(`/api/v1/admin/servers/${server.id}/scopes`, {
      data: { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } },
    }),
    200,
  );
  const fleetName = uniq("LP fleet");
  const fleet = await json<{ id: string }>(await api.post("/api/v1/admin/fleets", { data: { name: fleetName, serverIds: [server.id] } }), 201);
  const published = await json<{ revision: number }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/bundles`, { data: { note: "least privilege e2e" } }), 201);

  // An agent of the fleet reports twelve get_ticket calls of alice with tickets:read and tickets:write.
  const enrollment = await json<{ token: string }>(await api.post(`/api/v1/admin/fleets/${fleet.id}/enrollment-tokens`), 201);
  const enrolled = (await (
    await fetch(`${baseURL}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment.token, name: uniq("lp-agent"), version: "e2e" }),
    })
  ).json()) as { agentKey: string };
  const lines = Array.from({ length: 12 }, (_, i) => ({
    id: uuidv7(),
    bundleRevision: published.revision,
    tenantId: tenant.id,
    serverId: server.id,
    method: "tools/call",
    tool: "get_ticket",
    user: "alice",
    client: "claude",
    scopes: ["tickets:read", "tickets:write"],
    outcome: "allow",
    reason: "allowed by scope tickets:read",
    determining: [],
    args: { id: `T-${i}` },
    latencyUs: 100,
  }));
  const shipped = await fetch(`${baseURL}/api/v1/agent/decisions`, {
    method: "POST",
    headers: { authorization: `Bearer ${enrolled.agentKey}`, "content-type": "application/x-ndjson" },
    body: lines.map((l) => JSON.stringify(l)).join("\n"),
  });
  expect(shipped.status, await shipped.clone().text()).toBeLessThan(300);

  await page.goto("/least-privilege");
  await expect(page.getByRole("heading", { name: "Least privilege" })).toBeVisible();
  const card = page.getByTestId("finding").filter({ hasText: "Scope tickets:read grants 1 tool" }).filter({ hasText: server.name });
  await expect(card).toBeVisible();
  const evidence = card.getByTestId("finding-evidence");
  await expect(evidence).toContainText("Calls in 30 days");
  await expect(evidence).toContainText("12");
  await expect(evidence).toContainText("list_tickets");
  await expect(evidence).toContainText("get_ticket");

  // alice uses 1 of the 4 tools her scopes allow: that finding links to her newest decision in the log.
  const broad = page.getByTestId("finding").filter({ hasText: "User alice used 1 of 4 tools" }).filter({ hasText: server.name });
  await expect(broad.getByTestId("example-decision").first()).toHaveAttribute("href", `/audit/${lines[11]!.id}`);

  await card.getByTestId("remedy-narrow_mapping").click();
  const dialog = page.getByTestId("remedy-dialog");
  await expect(dialog.getByTestId("remedy-impact")).toContainText("0 allow → deny flips on 12 decisions");
  await dialog.getByTestId("remedy-create").click();
  await expect(dialog.getByTestId("remedy-done")).toContainText(fleetName);

  // The draft is the narrowed mapping, waiting for the fleet's publish.
  const mapping = await json<{ version: number; mapping: Record<string, string[]> }>(await api.get(`/api/v1/admin/servers/${server.id}/scopes`), 200);
  expect(mapping.version).toBe(2);
  expect(mapping.mapping["tickets:read"]).toEqual(["get_ticket"]);
  const draft = await json<{ diff: unknown }>(await api.get(`/api/v1/admin/fleets/${fleet.id}/draft`), 200);
  expect(JSON.stringify(draft.diff)).toContain("tickets:read");
});
