import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { clicker } from "../journeys";

// Issue 14: the live demo walked from a clean data dir, as a new user would.
// `node scripts/start.mjs` (what `npm start` runs) on free ports with an empty
// MANDATE_DATA_DIR and no DATABASE_URL (embedded PGlite), none of the e2e
// runner's secrets, the demo on: sandbox upstream, sandbox authorization
// server, seeded tenant, enrolled agent, the demo client's trickle. Then:
// sign in with the one-time password the first start prints, choose a
// password, see denials on the Overview, follow one to its policy, edit it,
// publish, and see the agent enforce the new revision in the decision log.

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function stopGroup(child: ChildProcess) {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once("exit", r));
  try {
    process.kill(-child.pid, "SIGTERM"); // start.mjs and the processes it started (its own group)
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

/** Reloads until `check` passes (the Overview refreshes every 30 s by itself; a person would reload). */
async function reloadUntil(page: Page, check: () => Promise<void>, timeout: number) {
  await expect(async () => {
    await page.reload();
    await check();
  }).toPass({ timeout, intervals: [1000, 2000] });
}

test("first start: the demo's denials on the Overview, a policy edited and published, the agent enforcing it", async ({ browser }) => {
  test.setTimeout(180_000);
  const [port, sandboxPort, asPort, agentPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "mandate-demo-walk-"));
  const base = `http://127.0.0.1:${port}`;
  // A fresh clone's environment: nothing of the e2e runner's (no DATABASE_URL, secrets, SSO or owner settings).
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: String(port),
    NEXTAUTH_URL: base,
    SANDBOX_PORT: String(sandboxPort),
    DEMO_AS_PORT: String(asPort),
    DEMO_AGENT_PORT: String(agentPort),
    MANDATE_DATA_DIR: dataDir,
  } as unknown as NodeJS.ProcessEnv;
  const t0 = Date.now();
  const child = spawn(process.execPath, ["scripts/start.mjs"], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const marks: Record<string, number> = {};
  const onOutput = (d: Buffer) => {
    const s = d.toString();
    log += s;
    if (!marks.dashboard && /Ready in|✓ Ready/.test(s)) marks.dashboard = Date.now() - t0;
    if (!marks.agent && s.includes("[demo] agent and client running")) marks.agent = Date.now() - t0;
  };
  child.stdout!.on("data", onOutput);
  child.stderr!.on("data", onOutput);
  const password = async () => {
    await expect.poll(() => /password: (\S+)/.exec(log)?.[1] ?? "", { timeout: 90_000, intervals: [250] }).not.toBe("");
    return /password: (\S+)/.exec(log)![1]!;
  };

  const context = await browser.newContext({ baseURL: base, viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const j = clicker(page, "demo");
  try {
    // 1. Sign in with the one-time password the first start printed, then choose one's own.
    const oneTime = await password();
    const email = /e-mail:\s+(\S+)/.exec(log)![1]!;
    await page.goto("/login");
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(oneTime);
    await j.click(page.getByRole("button", { name: "Sign in" }));
    await expect(page.getByRole("alert").filter({ hasText: "one-time password" })).toBeVisible({ timeout: 30_000 });
    await j.shot("one-time-password");
    await j.click(page.getByRole("link", { name: "Choose your own password" }));
    const mine = randomBytes(12).toString("base64url");
    await page.getByLabel("Current password").fill(oneTime);
    await page.getByLabel("New password").fill(mine);
    await j.click(page.getByRole("button", { name: "Change password" }));
    await expect(page).toHaveURL(/\/login/);
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(mine);
    await j.click(page.getByRole("button", { name: "Sign in" }));
    await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
    marks.signedIn = Date.now() - t0;

    // 2. The Overview shows the demo's denials (within a minute of the start).
    const decisions = page.getByTestId("overview-decisions");
    await reloadUntil(page, () => expect(decisions).toContainText(/[1-9][\d,]* denied/, { timeout: 3000 }), 90_000);
    marks.firstDenial = Date.now() - t0;
    console.log(
      `[demo] start → dashboard ready ${seconds(marks.dashboard ?? NaN)}, agent and client running ${seconds(marks.agent ?? NaN)}, signed in ${seconds(marks.signedIn)}, ` +
        `first denied decision on the Overview ${seconds(marks.firstDenial)}`,
    );
    // Soft: the rest of the walk still runs (and reports) when a loaded machine makes the start slower.
    expect.soft(marks.firstDenial, "denials on the Overview within a minute of the start").toBeLessThan(60_000);
    await j.shot("overview-denials");

    // 3. Follow a denial to the policy that made it. (The very first denials are the client's discovery
    // requests without a token, refused at the gate; the payroll ticket, denied by a policy, follows.)
    await j.click(page.getByRole("link", { name: "See denials" }));
    await expect(page).toHaveURL(/\/audit\?.*outcome=deny/);
    const payroll = page.getByTestId("decision-row").filter({ hasText: "No tickets in the payroll project" }).first();
    await reloadUntil(page, () => expect(payroll).toBeVisible({ timeout: 3000 }), 60_000);
    marks.firstPolicyDenial = Date.now() - t0;
    console.log(`[demo] start → first decision denied by a policy in the decision log ${seconds(marks.firstPolicyDenial)}`);
    await j.shot("denials");
    await j.click(payroll.getByRole("link", { name: /^Open decision/ }));
    const determining = page.getByTestId("determining-policy").filter({ hasText: "No tickets in the payroll project" });
    await expect(determining).toBeVisible();
    await expect(page.getByText(/Determining policies at revision 1/)).toBeVisible();
    // The server's id in the Cedar carries its name.
    await expect(determining.getByTestId("cedar-name").first()).toHaveAttribute("title", "server Ticket desk (demo) / create_ticket");
    await j.shot("decision");
    await j.click(determining.getByRole("link", { name: "No tickets in the payroll project" }));
    await expect(page).toHaveURL(/\/policies\/[^/?]+$/);
    const policyId = new URL(page.url()).pathname.split("/").pop()!;

    // 4. Edit it: the project it protects becomes "facilities" (which the demo client files tickets in).
    const editor = page.locator('.cm-content[contenteditable="true"]');
    await expect(editor).toContainText('"payroll"');
    const text = await editor.innerText();
    expect(text).toContain('context.args.project == "payroll"');
    await j.click(editor);
    await page.keyboard.press("ControlOrMeta+a");
    await page.keyboard.insertText(text.replace('context.args.project == "payroll"', 'context.args.project == "facilities"'));
    await expect(page.getByText("Unsaved changes")).toBeVisible();
    await j.click(page.getByRole("button", { name: "Save changes" }));
    await j.shot("policy-saved");

    // 5. Publish: saving offers the demo fleet; publishing asks once.
    await j.click(page.getByTestId("publish-next").getByRole("link", { name: "Review and publish: Demo fleet (sample data)" }));
    await expect(page.getByTestId("bundle-diff").getByTestId("diff-token-added")).toHaveText(["facilities"]);
    await j.shot("draft-diff");
    await j.click(page.getByRole("button", { name: "Publish revision 2" }));
    await j.click(page.getByRole("dialog").getByRole("button", { name: "Publish", exact: true }));
    await expect(page.getByTestId("revision-2")).toContainText("live");
    const published = Date.now();
    await j.shot("published");

    // 6. The agent enforces revision 2: the demo client's next ticket in "facilities" is denied by the edited policy.
    await page.goto(`/audit?policy=${encodeURIComponent(policyId)}&revision=2&outcome=deny`);
    const enforced = page.getByTestId("decision-row").filter({ hasText: "create_ticket" }).first();
    await reloadUntil(page, () => expect(enforced).toBeVisible({ timeout: 3000 }), 60_000);
    marks.enforced = Date.now() - t0;
    console.log(`[demo] published → first decision of revision 2 in the log: ${seconds(Date.now() - published)}`);
    await j.click(enforced.getByRole("link", { name: /^Open decision/ }));
    await expect(page.getByText(/Determining policies at revision 2/)).toBeVisible();
    await expect(page.getByTestId("decision-args")).toContainText('"facilities"');
    await expect(page.getByTestId("determining-policy")).toContainText('context.args.project == "facilities"');
    await j.shot("enforced");
    console.log(`[journey] demo walk (sign in twice, denial → policy → edit → publish → enforced decision): ${j.count} clicks, ${seconds(Date.now() - t0)} in all`);
  } catch (err) {
    console.log(`[demo] start.mjs output (last 4000 characters):\n${log.slice(-4000)}`);
    throw err;
  } finally {
    await context.close();
    await stopGroup(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
