/**
 * Human approval end to end (issue 16): a real agent, the control plane's
 * agent API over HTTP, a bank upstream on the official MCP SDK and the SDK's
 * own client. A transfer over the threshold waits with URLElicitationRequired
 * (-32042) naming the approval page; an approver approves through the
 * service the API calls; the identical retried call succeeds; another amount
 * is not covered; rejection and expiry deny with the reason; the stateless
 * era gets an input-required result; a plain forbid wins over an approval.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { approvalRequests, fleetServers, users } from "@/db/schema";
import { addGroupMember, approvalListQuery, decideApproval, getApproval, listApprovals } from "@/lib/approvals/service";
import { activeBundle, republishLiveBundles } from "@/lib/bundles/service";
import { URL_ELICITATION_REQUIRED } from "@/lib/enforcement/approval";
import { qualifiedUser } from "@/lib/enforcement/token";
import type { AgentStack } from "./agent-proc-harness";
import { until } from "./agent-proc-harness";
import { startApprovalStack, type ApprovalStack } from "./approval-stack";
import { makeUser, type MadeUser } from "./db";
import { approverGroups } from "@/db/schema";

let a: ApprovalStack;
let s: AgentStack;
let bankServerId: string;
let approver: MadeUser;
let requester: MadeUser;
let executed: ApprovalStack["executed"];
const bearer = (claims: Record<string, unknown> = {}) => a.bearer(claims);
const transfer = (token: string, args: { amount: number; to: string }) => a.transfer(token, args);

const pendingOf = async (amount: number) => {
  const rows = await s.t.db.select().from(approvalRequests).where(eq(approvalRequests.serverId, bankServerId));
  return rows.filter((r) => (r.args as { amount?: number }).amount === amount);
};

beforeAll(async () => {
  a = await startApprovalStack();
  ({ s, bankServerId, approver, executed } = a);
  // The requester also signs in to the dashboard, with the SSO identity its tokens carry, and is in the group.
  requester = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
  await s.t.db.update(users).set({ oidcIssuer: s.issuer.issuer, oidcSubject: "carol" }).where(eq(users.id, requester.user.id));
  const [group] = await s.t.db.select().from(approverGroups).where(eq(approverGroups.tenantId, s.tenantA));
  await addGroupMember(s.owner.ctx, group!.id, { email: requester.user.email });
}, 180_000);

afterAll(async () => {
  await a?.stop();
});

describe("a call over the threshold waits for a person", () => {
  it("under the threshold runs; over it answers -32042 naming the approval page, and files one request", async () => {
    const token = await bearer();
    expect(await transfer(token, { amount: 10, to: "dave" })).toEqual({ ok: true });
    const r = await transfer(token, { amount: 5000, to: "dave" });
    if (r.ok) throw new Error("the call was not held");
    expect(r.code).toBe(URL_ELICITATION_REQUIRED);
    const el = (r.data.elicitations as { mode: string; url: string; elicitationId: string; message: string }[])[0]!;
    expect(el.mode).toBe("url");
    expect(el.url).toMatch(/\/approvals\/apr_/);
    expect(el.message).toMatch(/finance-approvers/);
    expect(executed.some((e) => e.amount === 5000)).toBe(false);
    // A retry before any decision finds the same request again.
    const again = await transfer(token, { amount: 5000, to: "dave" });
    expect(!again.ok && (again.data.elicitations as { elicitationId: string }[])[0]!.elicitationId).toBe(el.elicitationId);
    const rows = await pendingOf(5000);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: el.elicitationId, status: "requested", userId: qualifiedUser(s.issuer.issuer, "carol"), clientId: "bank-app", approvers: ["finance-approvers"] });
  });

  it("the requester cannot approve their own call; an outsider cannot see it; the approver's queue holds it", async () => {
    const [row] = await pendingOf(5000);
    await expect(decideApproval(requester.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/four-eyes/);
    const outsider = await makeUser(s.t.db, { memberships: [[s.tenantB, "admin"]] });
    await expect(getApproval(outsider.ctx, row!.id)).rejects.toThrow(/not found/);
    await expect(decideApproval(outsider.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/not found/);
    // A tenant admin who is in no approver group may read it but not decide it.
    const plainAdmin = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
    await expect(decideApproval(plainAdmin.ctx, row!.id, { decision: "approve", reason: "" }, s.kek)).rejects.toThrow(/finance-approvers/);
    const mine = await listApprovals(approver.ctx, approvalListQuery.parse({ view: "mine" }));
    expect(mine.items.map((i) => i.id)).toContain(row!.id);
    expect((await listApprovals(requester.ctx, approvalListQuery.parse({ view: "mine" }))).items.map((i) => i.id)).not.toContain(row!.id);
  });

  it("approved: the identical retried call succeeds at once; another amount is not covered", async () => {
    const token = await bearer();
    const [row] = await pendingOf(5000);
    const t0 = performance.now();
    await decideApproval(approver.ctx, row!.id, { decision: "approve", reason: "invoice 42" }, s.kek);
    await until(async () => (await transfer(token, { amount: 5000, to: "dave" })).ok, 5_000);
    console.log(`[agent-approval] approve → identical call executed: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(executed.filter((e) => e.amount === 5000)).toHaveLength(1);
    const other = await transfer(token, { amount: 5001, to: "dave" });
    expect(other).toMatchObject({ ok: false, code: URL_ELICITATION_REQUIRED });
    // Another user's identical call is another call.
    expect(await transfer(await bearer({ sub: "erin" }), { amount: 5000, to: "dave" })).toMatchObject({ ok: false, code: URL_ELICITATION_REQUIRED });
    await until(async () => (await s.t.db.select().from(approvalRequests).where(eq(approvalRequests.id, row!.id)))[0]!.status === "executed", 5_000);
  });

  it("an approval of one call runs it once: the identical call again is not executed and asks anew, saying the approval was used", async () => {
    const token = await bearer();
    await transfer(token, { amount: 5500, to: "dave" });
    const [row] = await pendingOf(5500);
    await decideApproval(approver.ctx, row!.id, { decision: "approve", reason: "" }, s.kek);
    await until(async () => (await transfer(token, { amount: 5500, to: "dave" })).ok, 5_000);
    // The same call again, at once (the live section may still hold the approval): not executed.
    const again = await transfer(token, { amount: 5500, to: "dave" });
    if (again.ok) throw new Error("a one-call approval was used twice");
    expect(again.code).toBe(URL_ELICITATION_REQUIRED);
    // "already used" while the agent still holds the approval; once the republished bundle without it arrives
    // (it can be first), a plain new request (the reason itself: test/agent-approval-once.test.ts).
    expect((again.data.elicitations as { message: string }[])[0]!.message).toMatch(new RegExp(`approval ${row!.id} was already used; ask again|^this call needs approval from`));
    // Two identical calls at once: neither runs.
    const both = await Promise.all([transfer(token, { amount: 5500, to: "dave" }), transfer(token, { amount: 5500, to: "dave" })]);
    expect(both.map((r) => r.ok)).toEqual([false, false]);
    expect(executed.filter((e) => e.amount === 5500)).toHaveLength(1);
    // The control plane drops the executed approval from the live section; the retry then files a new request.
    await until(
      async () =>
        (await pendingOf(5500))
          .map((r) => r.status)
          .sort()
          .join() === "executed,requested",
      5_000,
    );
    const [fs] = await s.t.db.select().from(fleetServers).where(eq(fleetServers.serverId, bankServerId));
    const live = (await activeBundle(s.t.db, fs!.fleetId))!.content as { approvals?: { id: string }[] };
    expect(live.approvals?.map((x) => x.id)).not.toContain(row!.id);
    expect((await pendingOf(5500)).map((r) => r.status).sort()).toEqual(["executed", "requested"]);
    const [next] = (await pendingOf(5500)).filter((r) => r.status === "requested");
    // A new approval allows it once more, and only once.
    await decideApproval(approver.ctx, next!.id, { decision: "approve", reason: "" }, s.kek);
    await until(async () => (await transfer(token, { amount: 5500, to: "dave" })).ok, 5_000);
    expect(await transfer(token, { amount: 5500, to: "dave" })).toMatchObject({ ok: false, code: URL_ELICITATION_REQUIRED });
    expect(executed.filter((e) => e.amount === 5500)).toHaveLength(2);
  });

  it("approve similar calls: many calls run within the window", async () => {
    const token = await bearer({ sub: "erin" });
    await transfer(token, { amount: 5100, to: "dave" });
    const [row] = await pendingOf(5100);
    await decideApproval(approver.ctx, row!.id, { decision: "approve", reason: "", similarMinutes: 30 }, s.kek);
    await until(async () => (await transfer(token, { amount: 5100, to: "dave" })).ok, 5_000);
    expect(await transfer(token, { amount: 5100, to: "dave" })).toEqual({ ok: true });
    expect(await transfer(token, { amount: 5200, to: "dave" })).toEqual({ ok: true });
    expect(executed.filter((e) => e.amount === 5100)).toHaveLength(2);
  });

  it("a plain forbid wins over an approval", async () => {
    const token = await bearer();
    const r = await transfer(token, { amount: 7000, to: "sanctioned" });
    expect(r).toMatchObject({ ok: false, code: -32003 });
    expect(await pendingOf(7000)).toHaveLength(0);
  });

  it("rejection denies with the approver's reason", async () => {
    const token = await bearer();
    await transfer(token, { amount: 6000, to: "mallory" });
    const [row] = await pendingOf(6000);
    await decideApproval(approver.ctx, row!.id, { decision: "reject", reason: "unknown payee" }, s.kek);
    await until(async () => {
      const r = await transfer(token, { amount: 6000, to: "mallory" });
      return !r.ok && r.code === -32003 && /unknown payee/.test(String(r.data.reason));
    }, 5_000);
    expect(executed.some((e) => e.amount === 6000)).toBe(false);
  });

  it("an expired approval denies with the reason, and the retried call asks anew", async () => {
    const token = await bearer();
    await transfer(token, { amount: 8000, to: "dave" });
    const [row] = await pendingOf(8000);
    // Approved with a window that has already ended, before any agent could use it (a live republish carries it).
    await s.t.db
      .update(approvalRequests)
      .set({ status: "approved", decidedBy: approver.user.id, decidedByLabel: approver.user.email, decidedAt: new Date(), approvalExpiresAt: new Date(Date.now() - 1000) })
      .where(eq(approvalRequests.id, row!.id));
    await s.t.db.transaction((tx) => republishLiveBundles(tx, "system", s.kek, [bankServerId], "test: expire"));
    await until(async () => {
      const r = await transfer(token, { amount: 8000, to: "dave" });
      return !r.ok && r.code === URL_ELICITATION_REQUIRED && /expired at/.test(String((r.data.elicitations as { message: string }[])[0]!.message));
    }, 5_000);
    expect(executed.some((e) => e.amount === 8000)).toBe(false);
    const rows = await pendingOf(8000);
    expect(rows.map((r) => r.status).sort()).toEqual(["approved", "requested"]);
  });

  it("stateless era (SDK v2 upstream): an input-required result; after approval the retry with its requestState runs", async () => {
    const token = await s.issuer.sign({ sub: "carol", tenant: s.tenantA, client_id: "bank-app", scope: "bank" }, a.statelessUri);
    type Answer = {
      result?: { resultType?: string; inputRequests?: Record<string, { method: string; params: { mode: string; url: string; elicitationId: string } }>; requestState?: string; content?: unknown };
      error?: { code: number };
    };
    const call = async (amount: number, retry?: { requestState: string }) => {
      const res = await fetch(a.statelessUri, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2026-07-28",
          "mcp-method": "tools/call",
          "mcp-name": "transfer",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: randomUUID(),
          method: "tools/call",
          params: {
            name: "transfer",
            arguments: { amount, to: "dave" },
            ...(retry ? { requestState: retry.requestState, inputResponses: { approval: { action: "accept" } } } : {}),
            _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": { elicitation: { url: {} } } },
          },
        }),
      });
      return (await res.json()) as Answer;
    };
    const held = await call(9000);
    expect(held.error, JSON.stringify(held)).toBeUndefined();
    expect(held.result!.resultType).toBe("input_required");
    const el = held.result!.inputRequests!.approval!;
    expect(el).toMatchObject({ method: "elicitation/create", params: { mode: "url", url: expect.stringMatching(/\/approvals\/apr_/) } });
    expect(held.result!.requestState).toBe(`mandate-approval:${el.params.elicitationId}`);
    // Retried before a decision: still waiting.
    expect((await call(9000, { requestState: held.result!.requestState! })).result?.resultType).toBe("input_required");
    await decideApproval(approver.ctx, el.params.elicitationId, { decision: "approve", reason: "" }, s.kek);
    let done: Answer | null = null;
    await until(async () => {
      const r = await call(9000, { requestState: held.result!.requestState! });
      if (r.result && r.result.resultType !== "input_required") done = r;
      return done !== null;
    }, 5_000);
    expect(JSON.stringify(done)).toContain("sent 9000 to dave");
    expect(executed.filter((e) => e.amount === 9000)).toHaveLength(1);
    // Another amount is another call.
    expect((await call(9001)).result?.resultType).toBe("input_required");
  });

  it("with the control plane down, an approval the agent holds still allows; a new call that needs one is refused with the reason", async () => {
    const token = await bearer();
    await s.cp.close();
    const before = executed.length;
    // Erin's approval of similar calls (above) is still in the bundle the agent holds.
    expect(await transfer(await bearer({ sub: "erin" }), { amount: 5300, to: "dave" })).toEqual({ ok: true });
    expect(executed.length).toBe(before + 1);
    const r = await transfer(token, { amount: 4242, to: "dave" });
    expect(r).toMatchObject({ ok: false, code: -32003 });
    expect(!r.ok && String(r.data.reason)).toMatch(/needs approval from finance-approvers.*could not be filed/);
  });
});
