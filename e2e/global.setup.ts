import { mkdirSync, writeFileSync } from "node:fs";
import { expect, test as setup } from "@playwright/test";
import { authDir, json, owner, signIn } from "./helpers";

setup("owner signs in through the dashboard and gets an API token", async ({ page }) => {
  mkdirSync(authDir, { recursive: true });
  await signIn(page, owner.email, owner.password);
  await expect(page.getByRole("heading", { name: "Overview" })).toBeVisible();
  await page.context().storageState({ path: `${authDir}/owner.json` });

  // The session cookie works for same-origin API writes.
  const res = await page.request.post("/api/v1/admin/tokens", {
    data: { name: "e2e-owner", role: "owner" },
    headers: { origin: new URL(page.url()).origin },
  });
  const { token } = await json<{ token: string }>(res, 201);
  expect(token).toMatch(/^mdt_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
  writeFileSync(`${authDir}/tokens.json`, JSON.stringify({ owner: token }));
});
