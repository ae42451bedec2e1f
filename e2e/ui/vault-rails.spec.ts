import { randomBytes } from "node:crypto";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, sandboxURL, uniq } from "../helpers";

/*
 * Rotation's safety rails in the dashboard (issue 14): a blank secret is
 * answered with a sentence, an earlier version is made current again and a
 * grace period ended (each asked once), and "Test connection" tries the
 * sandbox upstream and names what failed. No secret is ever on the page.
 */

const key = () => `sk_live_${randomBytes(16).toString("hex")}`;

async function setUpstreamKeys(keys: string[]) {
  const r = await fetch(`${sandboxURL}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header: "x-api-key", keys }) });
  expect(r.status).toBe(200);
}

async function entryWith(api: APIRequestContext, secrets: string[]) {
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  const name = uniq("Rails key");
  const { id } = await json<{ id: string }>(
    await api.post("/api/v1/admin/vault", { data: { serverId: server.id, tenantId: tenant.id, name, kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: secrets[0] } }),
    201,
  );
  for (const secret of secrets.slice(1)) await json(await api.post(`/api/v1/admin/vault/${id}/rotate`, { data: { secret, graceSeconds: 3600 } }), 200);
  return { id, name };
}

async function noSecretOn(page: Page, secrets: string[]) {
  const html = await page.content();
  for (const s of secrets) expect(html).not.toContain(s);
}

test.afterEach(async () => {
  await setUpstreamKeys([]);
});

test("a blank secret is answered with a sentence saying what to fix, next to the field", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const k1 = key();
  const e = await entryWith(api, [k1]);
  await page.goto(`/vault/${e.id}`);
  await page.getByRole("button", { name: "Rotate", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: `Rotate ${e.name}` });
  await dialog.getByRole("button", { name: "Rotate now" }).click();
  await expect(dialog.getByTestId("form-error")).toHaveText("Fix this and try again: API key must not be empty: paste the API key the upstream issued.");
  await expect(dialog.getByLabel("API key")).toHaveAttribute("aria-invalid", "true");
  await expect(dialog.getByText("API key must not be empty: paste the API key the upstream issued.", { exact: true })).toBeVisible();
  // Nothing was sent: still version 1.
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByTestId("version-1").getByText("current", { exact: true })).toBeVisible();
  await expect(page.getByTestId("version-2")).toHaveCount(0);
});

test("make an earlier version current again, then end the grace of the replaced one, each asked once", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const [k1, k2] = [key(), key()];
  const e = await entryWith(api, [k1, k2]);

  // Journey: Vault → entry → Make current again → confirm (clicks counted).
  let clicks = 0;
  await page.goto("/vault");
  await page.getByRole("link", { name: e.name }).click();
  clicks++;
  await expect(page.getByTestId("version-1").getByText("grace", { exact: true })).toBeVisible();
  await page.getByTestId("version-1").getByRole("button", { name: "Make current again" }).click();
  clicks++;
  const dialog = page.getByRole("dialog", { name: "Make version 1 current again?" });
  await expect(dialog).toContainText("Version 2, current now, stays valid for the grace period you choose");
  await dialog.getByRole("button", { name: "Make version 1 current" }).click();
  clicks++;
  await expect(page.getByTestId("version-1").getByText("current", { exact: true })).toBeVisible();
  await expect(page.getByTestId("version-2").getByText("grace", { exact: true })).toBeVisible();
  console.log(`[journey] roll back a rotation (make the previous key current again): ${clicks + 1} clicks from the Vault page`);

  // End the grace of version 2 now.
  await page.getByTestId("version-2").getByRole("button", { name: "End grace now" }).click();
  const end = page.getByRole("dialog", { name: "Stop accepting version 2 now?" });
  await expect(end).toContainText("the broker stops serving it");
  await end.getByRole("button", { name: "End grace of version 2" }).click();
  await expect(page.getByTestId("version-2").getByText("retired", { exact: true })).toBeVisible();
  await expect(page.getByTestId("version-2").getByRole("button", { name: "End grace now" })).toHaveCount(0);
  await noSecretOn(page, [k1, k2]);

  // The API agrees, and the admin trail has both actions.
  const entry = await json<{ currentVersion: number; versions: { version: number; status: string }[] }>(await api.get(`/api/v1/admin/vault/${e.id}`), 200);
  expect(entry.currentVersion).toBe(1);
  expect(entry.versions.find((v) => v.version === 2)?.status).toBe("retired");
  const trail = await json<{ items: { action: string; targetId: string }[] }>(await api.get(`/api/v1/admin/trail?targetId=${e.id}`), 200);
  const actions = trail.items.filter((i) => i.targetId === e.id).map((i) => i.action);
  expect(actions).toEqual(expect.arrayContaining(["vault.make_current", "vault.end_grace"]));

  // The agents card is there, and says when no agent serves the server yet.
  await expect(page.getByText("No agent serves this server yet")).toBeVisible();
});

test("test connection reaches the sandbox upstream, and names a refused credential without echoing it", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const k1 = key();
  const e = await entryWith(api, [k1]);
  await page.goto(`/vault/${e.id}`);
  // The upstream accepts this key.
  await setUpstreamKeys([k1]);
  await page.getByRole("button", { name: "Test connection" }).click();
  await expect(page.getByTestId("test-connection-result")).toContainText(/Connected: version 1 was accepted by .*, which listed \d+ tools?/);
  // The upstream now wants another key: the test says the credential was refused (HTTP 401).
  await setUpstreamKeys([key()]);
  await page.getByRole("button", { name: "Test connection" }).click();
  const result = page.getByTestId("test-connection-result");
  await expect(result).toContainText("The upstream refused the credential (HTTP 401)");
  await expect(result).toContainText("check that the secret is right and still valid upstream, or rotate it");
  await noSecretOn(page, [k1]);
});
