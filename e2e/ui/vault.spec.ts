import { randomBytes } from "node:crypto";
import { expect, test } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

test("an owner stores an upstream API key, rotates it with a grace period, and never sees either secret again", async ({ page }) => {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api);
  const server = await createServer(api, tenant.id);
  const first = `sk_live_${randomBytes(16).toString("hex")}`;
  const second = `sk_live_${randomBytes(16).toString("hex")}`;
  const name = uniq("Ticket desk key");

  await page.goto("/vault");
  await page.getByRole("button", { name: "New credential" }).first().click();
  const create = page.getByRole("dialog");
  await create.getByLabel("Server").selectOption({ label: server.name });
  await create.getByLabel("Name").fill(name);
  await create.getByLabel("Header").fill("x-api-key");
  await create.getByLabel("API key").fill(first);
  await create.getByRole("button", { name: "Store credential" }).click();

  // Storing opens the entry: version 1 is current, shown by its fingerprint and last characters only.
  await expect(page).toHaveURL(/\/vault\/vlt_/);
  await expect(page.getByTestId("version-1")).toContainText("current");
  await expect(page.getByTestId("version-1")).toContainText(first.slice(-4));
  expect(await page.content()).not.toContain(first);

  await page.getByRole("button", { name: "Rotate" }).click();
  const rotate = page.getByRole("dialog", { name: `Rotate ${name}` });
  await rotate.getByLabel("API key").fill(second);
  await rotate.getByRole("button", { name: "Rotate now" }).click();

  await expect(page.getByTestId("version-2")).toContainText("current");
  await expect(page.getByTestId("version-1")).toContainText("grace");
  await expect(page.getByTestId("version-1")).toContainText("still accepted until");
  const html = await page.content();
  expect(html).not.toContain(first);
  expect(html).not.toContain(second);

  // The list shows the entry at version 2 with the old one in grace.
  await page.goto("/vault");
  const row = page.getByTestId(`vault-row-${name}`);
  await expect(row).toContainText("v2");
  await expect(row).toContainText("old version in grace");
  await expect(row).toContainText(second.slice(-4));

  // The API answers the same metadata, and no secret either.
  const entries = await json<{ items: { name: string; currentVersion: number }[] }>(await api.get(`/api/v1/admin/vault?serverId=${server.id}`), 200);
  expect(entries.items.find((e) => e.name === name)?.currentVersion).toBe(2);
  expect(JSON.stringify(entries)).not.toContain(second.slice(0, 20));
});
