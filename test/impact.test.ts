import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decisions, fleetServers, fleets, type NewDecision } from "@/db/schema";
import { analyzeImpact, argsRead, contextRead, maskedArgNames, readsUserId } from "@/lib/bundles/impact";
import { publishBundle } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { addTool } from "@/lib/catalog/service";
import { ensurePartitions } from "@/lib/decisions/partitions";
import { maskHash } from "@/lib/enforcement/masking";
import { newId } from "@/lib/ids";
import { createPolicy, deletePolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const N = 300;
const LIST = 10;

/**
 * The seeded set. Baseline: scope tickets:read permits get_ticket; policy
 * "finance refunds" permits refund for group finance. Draft: a forbid on
 * get_ticket when id is like "VIP-*" is added, "finance refunds" is removed
 * and "small refunds" (amount < 100, anyone) is added. Six kinds by i % 6:
 *   0 get_ticket T-…            allow → allow
 *   1 get_ticket VIP-…          allow → deny   (the new forbid)
 *   2 refund finance amount 50  allow → allow  (old permit gone, new one applies)
 *   3 refund finance amount 500 allow → deny   (permit removed)
 *   4 refund other amount 50    deny  → allow  (new permit)
 *   5 refund other amount 500   deny  → deny
 * Overrides: i=7 (VIP) id hashed by masking, i=16 (kind 4) amount hidden → skipped
 * (a changed policy reads them); i=20 no tenant → skipped; i=3 stored as deny
 * under an older revision (still compared against the baseline replay).
 */
const kindOf = (i: number) => i % 6;
const MASKED_IDS = new Set([7, 16]);
const INCOMPLETE = new Set([20]);
const decId = (i: number) => `dec-${String(i).padStart(4, "0")}`;

describe("impact analysis", () => {
  let t: TestDb;
  let owner: MadeUser;
  let globalAuditor: MadeUser;
  let tenantAdmin: MadeUser;
  let tenantId: string;
  let serverId: string;
  let otherServerId: string;
  let fleetId: string;
  const t0 = Date.now() - 2 * 3600_000;

  const expected = (ids: number[]) => {
    const a2d: string[] = [];
    const d2a: string[] = [];
    for (const i of ids) {
      if (MASKED_IDS.has(i) || INCOMPLETE.has(i)) continue;
      if (kindOf(i) === 1 || kindOf(i) === 3) a2d.push(decId(i));
      if (kindOf(i) === 4) d2a.push(decId(i));
    }
    return { a2d: a2d.sort(), d2a: d2a.sort() };
  };

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    globalAuditor = await makeUser(t.db, { role: "auditor" });
    tenantId = (await makeTenant(t.db, owner.actor)).id;
    tenantAdmin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
    const mk = async () =>
      (await createServer(
        owner.ctx,
        createServerInput.parse({ tenantId, name: uniq("srv "), resourceUri: `https://mcp.impact.example/${uniq()}`, upstreamUrl: "http://127.0.0.1:9/mcp", scopes: ["tickets:read"] }),
      ))!.id;
    serverId = await mk();
    otherServerId = await mk();
    await addTool(owner.ctx, serverId, { name: "get_ticket", description: "get", inputSchema: { type: "object", properties: { id: { type: "string" } } }, annotations: {}, risk: "low" });
    await addTool(owner.ctx, serverId, {
      name: "refund",
      description: "refund",
      inputSchema: { type: "object", properties: { amount: { type: "integer" }, note: { type: "string" } } },
      annotations: {},
      risk: "high",
    });
    await addTool(owner.ctx, serverId, { name: "list_tickets", description: "list", inputSchema: { type: "object", properties: { id: { type: "string" } } }, annotations: {}, risk: "low" });
    await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["get_ticket", "list_tickets"] } });
    const finance = await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name: "finance refunds",
      description: "",
      kind: "cedar",
      cedar: `permit (principal in Group::"finance", action == Action::"call_tool", resource == Tool::"${serverId}/refund");`,
      enabled: true,
    });
    fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: "impact fleet" });
    await t.db.insert(fleetServers).values({ fleetId, serverId });
    await publishBundle(owner.ctx, fleetId, { note: "baseline" }, kek);

    // The draft: add a forbid on an argument value, remove a permit, add another.
    await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name: "no VIP tickets",
      description: "",
      kind: "cedar",
      cedar: `forbid (principal, action == Action::"call_tool", resource == Tool::"${serverId}/get_ticket") when { context.args has id && context.args.id like "VIP-*" };`,
      enabled: true,
    });
    await deletePolicy(owner.ctx, finance!.id);
    await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name: "small refunds",
      description: "",
      kind: "cedar",
      cedar: `permit (principal, action == Action::"call_tool", resource == Tool::"${serverId}/refund") when { context.args has amount && context.args.amount < 100 };`,
      enabled: true,
    });

    const rows: NewDecision[] = [];
    for (let i = 0; i < N; i++) {
      const k = kindOf(i);
      const ticket = k <= 1;
      const amount = k === 2 || k === 4 ? 50 : 500;
      let args: Record<string, unknown> = ticket ? { id: `${k === 1 ? "VIP" : "T"}-${i}` } : { amount, note: "n" };
      if (i === 7) args = { id: maskHash(serverId, "get_ticket", "id", args.id) };
      if (i === 16) args = { amount: "[masked]", note: "n" };
      const allowedBefore = k === 0 || k === 1 || k === 2 || k === 3;
      rows.push({
        id: decId(i),
        at: new Date(t0 + i * 1000),
        agentId: "agt_test",
        fleetId,
        bundleRevision: i === 3 ? 0 : 1,
        tenantId: INCOMPLETE.has(i) ? null : tenantId,
        serverId,
        method: "tools/call",
        tool: ticket ? "get_ticket" : "refund",
        userId: `user-${i % 7}`,
        clientId: "claude",
        scopes: ticket ? ["tickets:read"] : [],
        outcome: i === 3 ? "deny" : allowedBefore ? "allow" : "deny",
        determining: [],
        args,
        context: { groups: k === 2 || k === 3 ? ["finance"] : [] },
      });
    }
    // Older calls of a tool no change touches: answered "unchanged" without asking Cedar.
    for (let i = 0; i < LIST; i++) {
      rows.push({
        id: `list-${i}`,
        at: new Date(t0 - (i + 1) * 1000),
        agentId: "agt_test",
        fleetId,
        tenantId,
        serverId,
        method: "tools/call",
        tool: "list_tickets",
        userId: "u",
        clientId: "c",
        scopes: ["tickets:read"],
        outcome: "allow",
        args: { id: "VIP-1" },
      });
    }
    // Noise the analysis must not load: another server (not in the fleet) and tools/list calls.
    for (let i = 0; i < 20; i++) {
      rows.push({
        id: `noise-${i}`,
        at: new Date(t0 + (N + i) * 1000),
        agentId: "agt_test",
        fleetId,
        tenantId,
        serverId: i % 2 ? otherServerId : serverId,
        method: i % 2 ? "tools/call" : "tools/list",
        tool: i % 2 ? "refund" : null,
        userId: "u",
        clientId: "c",
        outcome: "allow",
        args: { amount: 600 },
      });
    }
    await ensurePartitions(
      t.db,
      rows.map((r) => (r.at as Date).getTime()),
    );
    await t.db.insert(decisions).values(rows);
  });
  afterAll(() => t.close());

  const flipped = (r: Awaited<ReturnType<typeof analyzeImpact>>, dir: "allowToDeny" | "denyToAllow") => {
    // Every example id the tool groups hold (capped per group by `examples`).
    return r.byTool.flatMap((g) => g.examples.filter((e) => (dir === "allowToDeny" ? e.before.decision === "allow" : e.before.decision === "deny")).map((e) => e.id));
  };

  it("finds exactly the decisions the policy change flips", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 10_000 });
    const all = Array.from({ length: N }, (_, i) => i);
    const exp = expected(all);
    expect(r.totals.loaded).toBe(N + LIST);
    expect(r.totals.identicalSlices).toBe(LIST);
    // Refund calls repeat (same user, groups, amount): Cedar is asked once per distinct request.
    expect(r.totals.memoHits).toBeGreaterThan(50);
    expect(r.totals.skipped).toBe(3);
    expect(r.totals.skippedReasons).toEqual({ "masked arguments": 2, "incomplete decision (no tenant, user or tool)": 1 });
    expect(r.totals.replayed).toBe(N + LIST - 3);
    expect(r.totals.allowToDeny).toBe(exp.a2d.length);
    expect(r.totals.denyToAllow).toBe(exp.d2a.length);
    expect(r.totals.unchanged).toBe(N + LIST - 3 - exp.a2d.length - exp.d2a.length);
    // The stored "deny" of decision 3 (an older revision) is not what the baseline replays.
    expect(r.totals.baselineDiffersFromStored).toBe(1);

    const ticket = r.byTool.find((g) => g.label === "get_ticket")!;
    const refund = r.byTool.find((g) => g.label === "refund")!;
    expect(ticket).toMatchObject({ allowToDeny: exp.a2d.filter((id) => kindOf(Number(id.slice(4))) === 1).length, denyToAllow: 0 });
    expect(refund.allowToDeny).toBe(exp.a2d.filter((id) => kindOf(Number(id.slice(4))) === 3).length);
    expect(refund.denyToAllow).toBe(exp.d2a.length);
    for (const g of r.byTool) expect(g.examples.length).toBe(5);
    // Examples are the newest flips, and every one of them is an expected flip.
    for (const id of flipped(r, "allowToDeny")) expect(exp.a2d).toContain(id);
    for (const id of flipped(r, "denyToAllow")) expect(exp.d2a).toContain(id);

    const byName = Object.fromEntries(r.byPolicy.map((g) => [g.label, g]));
    expect(byName["no VIP tickets (draft)"]).toMatchObject({ allowToDeny: ticket.allowToDeny, denyToAllow: 0 });
    expect(byName["small refunds (draft)"]).toMatchObject({ allowToDeny: 0, denyToAllow: exp.d2a.length });
    // Removed permit: the draft denies by default, so the baseline's permit is named.
    expect(byName["finance refunds (baseline)"]).toMatchObject({ allowToDeny: refund.allowToDeny, denyToAllow: 0 });
    expect(r.changedPolicies.map((c) => [c.name, c.change]).sort()).toEqual([
      ["finance refunds", "removed"],
      ["no VIP tickets", "added"],
      ["small refunds", "added"],
    ]);
    const ex = ticket.examples[0]!;
    expect(ex).toMatchObject({ tool: "get_ticket", client: "claude", tenantId, serverId, before: { decision: "allow" }, after: { decision: "deny", reason: "denied by policy" } });
    expect(ex.args).toEqual({ id: expect.stringMatching(/^VIP-/) });
    expect(r.timing.totalMs).toBeGreaterThan(0);
    expect(r.baselineRevision).toBe(1);
  });

  it("lists every flipped decision id when asked for enough examples", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 10_000, examples: 100 });
    const exp = expected(Array.from({ length: N }, (_, i) => i));
    expect(flipped(r, "allowToDeny").sort()).toEqual(exp.a2d);
    expect(flipped(r, "denyToAllow").sort()).toEqual(exp.d2a);
    // Newest first within a group.
    const ticket = r.byTool.find((g) => g.label === "get_ticket")!;
    expect(ticket.examples.map((e) => e.at)).toEqual([...ticket.examples.map((e) => e.at)].sort().reverse());
  });

  it("honours the limit: only the newest N decisions are replayed", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 50 });
    expect(r.totals.loaded).toBe(50);
    const newest = Array.from({ length: 50 }, (_, j) => N - 1 - j);
    const exp = expected(newest);
    expect(r.totals.allowToDeny).toBe(exp.a2d.length);
    expect(r.totals.denyToAllow).toBe(exp.d2a.length);
    expect(r.totals.skipped).toBe(0);
    expect(r.oldest).toBe(new Date(t0 + (N - 50) * 1000).toISOString());
    expect(r.newest).toBe(new Date(t0 + (N - 1) * 1000).toISOString());
  });

  it("honours since with the maximum limit", async () => {
    const r = await analyzeImpact(owner.ctx, fleetId, { limit: 100_000, since: new Date(t0 + 100 * 1000).toISOString() });
    expect(r.totals.loaded).toBe(N - 100);
    const exp = expected(Array.from({ length: N - 100 }, (_, j) => 100 + j));
    expect(r.totals.allowToDeny).toBe(exp.a2d.length);
    expect(r.totals.denyToAllow).toBe(exp.d2a.length);
  });

  it("with nothing published, every call the draft allows is deny → allow", async () => {
    const idle = newId("fleet");
    await t.db.insert(fleets).values({ id: idle, name: "never published" });
    await t.db.insert(fleetServers).values({ fleetId: idle, serverId });
    const r = await analyzeImpact(owner.ctx, idle, { limit: 10_000 });
    expect(r.baselineRevision).toBeNull();
    // Draft allows: kind 0 (50), kind 2 (50, minus incomplete i=20), kind 4 (50, minus masked i=16), list_tickets (10).
    expect(r.totals).toMatchObject({ loaded: N + LIST, allowToDeny: 0, denyToAllow: 50 + 49 + 49 + LIST, skipped: 3 });
  });

  it("is for owners and auditors only; limits are checked", async () => {
    await expectAppError(analyzeImpact(tenantAdmin.ctx, fleetId, { limit: 10 }), "forbidden");
    const r = await analyzeImpact(globalAuditor.ctx, fleetId, { limit: 10 });
    expect(r.totals.loaded).toBe(10);
    await expect(analyzeImpact(owner.ctx, fleetId, { limit: 100_001 })).rejects.toThrow();
    await expect(analyzeImpact(owner.ctx, fleetId, { limit: 0 })).rejects.toThrow();
    await expectAppError(analyzeImpact(owner.ctx, newId("fleet"), { limit: 10 }), "not_found");
  });
});

describe("impact helpers", () => {
  it("names the masked top-level arguments", () => {
    expect(maskedArgNames({ a: "[masked]", b: "x", c: { d: "sha256:" + "0".repeat(32) }, e: ["sha256:nothex"] })).toEqual(["a", "c"]);
    expect(maskedArgNames(null)).toEqual([]);
  });

  it("finds the arguments a Cedar policy reads, conservatively", () => {
    expect([...argsRead('when { context.args has id && context.args.id like "VIP-*" }')]).toEqual(["id"]);
    expect([...argsRead('when { context.args has "odd name" && context.args["odd name"] == 1 }')]).toEqual(["odd name"]);
    expect([...argsRead("permit (principal, action, resource);")]).toEqual([]);
    expect(argsRead("when { context.args == {} }").has("*")).toBe(true);
    expect([...contextRead('when { context.args.x == 1 && context.time.hour < 8 && principal in Tenant::"t" }')].sort()).toEqual(["args", "time"]);
    expect(contextRead("when { context has time }").has("*")).toBe(true);
    expect(readsUserId('permit (principal in Group::"finance", action, resource) when { principal in Tenant::"t" };')).toBe(false);
    expect(readsUserId("permit (principal, action, resource) when { principal is User };")).toBe(false);
    expect(readsUserId('permit (principal == User::"alice", action, resource);')).toBe(true);
    expect(readsUserId('permit (principal, action, resource) when { principal in [User::"a"] };')).toBe(true);
  });
});
