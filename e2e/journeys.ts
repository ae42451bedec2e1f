import { mkdirSync } from "node:fs";
import type { Locator, Page } from "@playwright/test";

/** Where journey screenshots go (git-ignored; README "Tests" names it). */
export const SHOTS = "e2e/screenshots";

/**
 * Clicks and counts for one journey, and numbered screenshots of its steps
 * (`e2e/screenshots/<journey>-NN-<step>.png`). The count is the journey's cost
 * as an admin feels it; typing is not counted, a click to focus a field is.
 */
export function clicker(page: Page, journey: string) {
  let clicks = 0;
  let step = 0;
  mkdirSync(SHOTS, { recursive: true });
  return {
    async click(l: Locator) {
      await l.click();
      clicks++;
    },
    async shot(name: string) {
      await page.screenshot({ path: `${SHOTS}/${journey}-${String(++step).padStart(2, "0")}-${name}.png` });
    },
    get count() {
      return clicks;
    },
  };
}
