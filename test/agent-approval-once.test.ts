/**
 * An approval of one call is used once per agent (issue 16 fix): the agent
 * consumes it in the same synchronous step that lets the call through, keeps
 * the used ids in its data directory across a restart, and leaves approvals
 * of similar calls alone. The end-to-end case is in test/agent-approval.test.ts.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Decision } from "@/lib/enforcement/decide";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mandate-used-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const approved = (id: string, scope: "call" | "similar", expiresAt = new Date(Date.now() + 60_000).toISOString()): Decision => ({
  decision: "allow",
  reason: `approved by someone (${id}) until ${expiresAt}`,
  determining: ["scope:p"],
  errors: [],
  stage: "approval",
  stepUpScopes: [],
  approval: { policies: ["pol_big"], approvers: ["finance-approvers"], callHash: "a".repeat(64), status: "approved", id, scope, expiresAt },
});

/** A fresh copy of agent/approval.ts, as after a restart. */
async function freshAgent() {
  vi.resetModules();
  const m = await import("@/agent/approval");
  const off = m.registerApprovalReporter({ controlPlaneUrl: "http://127.0.0.1:9", agentKey: () => null, fleetId: () => "flt_1", dataDir: dir });
  return { ...m, off };
}

describe("consumeApproval", () => {
  it("allows a one-call approval once; the second identical call asks again, saying why", async () => {
    const a = await freshAgent();
    const first = a.consumeApproval(approved("apr_1", "call"), "flt_1");
    const second = a.consumeApproval(approved("apr_1", "call"), "flt_1");
    expect(first.decision).toBe("allow");
    expect(second).toMatchObject({ decision: "deny", stage: "approval", approval: { status: "required", approvers: ["finance-approvers"] } });
    expect(second.reason).toMatch(/^the approval apr_1 was already used; ask again: this call needs approval from finance-approvers/);
    a.off();
  });

  it("remembers used approvals across a restart (data directory), until they expire", async () => {
    const before = await freshAgent();
    expect(before.consumeApproval(approved("apr_2", "call"), "flt_1").decision).toBe("allow");
    before.off();
    expect(JSON.parse(await readFile(path.join(dir, before.USED_FILE), "utf8"))).toEqual(expect.arrayContaining([["apr_2", expect.any(Number)]]));
    const after = await freshAgent();
    expect(after.consumeApproval(approved("apr_2", "call"), "flt_1").decision).toBe("deny");
    expect(after.consumeApproval(approved("apr_3", "call"), "flt_1").decision).toBe("allow");
    after.off();
  });

  it("leaves approvals of similar calls alone (many uses)", async () => {
    const a = await freshAgent();
    for (let i = 0; i < 3; i++) expect(a.consumeApproval(approved("apr_s", "similar"), "flt_1").decision).toBe("allow");
    a.off();
  });
});
