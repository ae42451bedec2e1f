import { expect, test, type Page } from "@playwright/test";
import { apiAs, createServer, createTenant, json, ownerToken, uniq } from "../helpers";
import { clicker } from "../journeys";

// The emergency revoke, from the Overview to a revoked grant, on a phone
// (390×844) and on a laptop (1440×900). Every click is counted and printed;
// screenshots of each step go to e2e/screenshots/ (git-ignored, see README).

/** A tenant, a server and two imported grants of one user (one client each). */
async function seedGrants() {
  const api = await apiAs(ownerToken());
  const tenant = await createTenant(api, uniq("Phone"));
  const server = await createServer(api, tenant.id);
  const userId = `https://idp.e2e.test/#${uniq("dana")}`;
  const clients = [uniq("phone-app"), uniq("laptop-app")];
  await json(
    await api.post("/api/v1/admin/grants/import", { data: { tenantId: tenant.id, grants: clients.map((clientId) => ({ serverId: server.id, userId, clientId, scopes: ["tickets:read"] })) } }),
    200,
  );
  await api.dispose();
  return { tenant, server, userId, clients };
}

/** Nothing on the page is wider than the viewport (no sideways scrolling to reach a button). */
async function expectNoSidewaysScroll(page: Page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  expect(scroll, "page wider than the viewport").toBeLessThanOrEqual(width);
}

for (const [label, viewport] of [
  ["phone", { width: 390, height: 844 }],
  ["laptop", { width: 1440, height: 900 }],
] as const) {
  test.describe(`revoke a grant on a ${label}`, () => {
    test.use({ viewport });

    test(`from the Overview to a revoked grant at ${viewport.width}×${viewport.height}`, async ({ page }) => {
      const { userId, clients } = await seedGrants();
      const ui = clicker(page, `revoke-${label}`);
      await page.goto("/");
      await expect(page.getByRole("heading", { name: /^Overview/ })).toBeVisible();
      // The health tiles (issue 14) fit the viewport and each links to its fix.
      await expect(page.getByTestId("tile-clients")).toHaveAttribute("href", "/grants?tab=clients");
      await expect(page.getByTestId("tile-drifted")).toBeVisible();
      await expectNoSidewaysScroll(page);
      await ui.shot("overview");

      const nav = page.getByRole("navigation", { name: "Main" });
      if (label === "phone") {
        // The navigation is a drawer behind the menu button.
        await expect(nav).toBeHidden();
        await ui.click(page.getByRole("button", { name: "Open navigation" }));
        await expect(nav).toBeVisible();
        await ui.shot("navigation");
      } else {
        await expect(nav).toBeVisible();
      }
      await ui.click(nav.getByRole("link", { name: "Grants & clients" }));
      await expect(page.getByRole("heading", { name: "Grants & clients" })).toBeVisible();
      if (label === "phone") await expect(nav).toBeHidden();

      // Find the grant: type the user (here the id is known; in an emergency it is pasted from a ticket).
      await page.getByPlaceholder("User (exact id)").fill(userId);
      await expect(page).toHaveURL(/[?&]user=/);
      const rows = page.getByTestId(`grant-row-${userId}`);
      await expect(rows).toHaveCount(2);
      const row = rows.filter({ hasText: clients[0]! });
      const revoke = row.getByRole("button", { name: "Revoke", exact: true });
      await revoke.scrollIntoViewIfNeeded();
      await expectNoSidewaysScroll(page);
      // The button is entirely on screen: no sideways scroll needed to reach it.
      const box = (await revoke.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      await ui.shot("grant");

      await ui.click(revoke);
      const dialog = page.getByRole("dialog");
      await expect(dialog).toBeVisible();
      const dbox = (await dialog.boundingBox())!;
      expect(dbox.x + dbox.width).toBeLessThanOrEqual(viewport.width);
      await dialog.getByLabel("Reason (optional)").fill(`e2e ${label}: phone lost`);
      await ui.shot("confirm");
      await ui.click(dialog.getByRole("button", { name: "Revoke" }));
      await expect(dialog).toBeHidden();
      await expect(row.getByText("revoked")).toBeVisible();
      // The other grant of the same user is untouched.
      await expect(rows.filter({ hasText: clients[1]! }).getByText("active")).toBeVisible();
      await ui.shot("revoked");
      console.log(`[journey] revoke a grant (${label} ${viewport.width}×${viewport.height}): ${ui.count} clicks`);
      expect(ui.count).toBeLessThanOrEqual(label === "phone" ? 4 : 3);
    });
  });
}
