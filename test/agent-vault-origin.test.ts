/**
 * Issue 10 defect 1 (vault part) and issue 17 item 4: a vault entry is bound
 * to the upstream origin it was stored for. When the server's upstream moves
 * to another origin, every entry bound to the old one (the owning tenant's
 * and other tenants') is suspended: the bundle marks it, the broker refuses
 * it, a real agent fails closed ("Upstream credential unavailable") and the
 * new host never receives the secret, until a user allowed to write that
 * secret confirms it (recorded in the trail).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { auditEvents } from "@/db/schema";
import { activeBundle, publishBundle } from "@/lib/bundles/service";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { updateServer } from "@/lib/servers/service";
import { confirmOrigin, createEntry, getEntry, listEntries, rotateEntry } from "@/lib/vault/service";
import { makeUser, uniq } from "./db";
import { expectAppError } from "./expect";
import { startAgentStack, until, type AgentStack, type SandboxRequest } from "./agent-proc-harness";
import { startSandbox, type Sandbox } from "./sandbox";

let s: AgentStack & { extraTenantIds: string[] };
let moved: Sandbox;
const KEY_A = `ka-${uniq()}`;
const KEY_A2 = `ka2-${uniq()}`;
const KEY_B = `kb-${uniq()}`;

const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "origin-test", version: "1" } } };

async function setKeys(sb: Sandbox, keys: string[]) {
  const res = await fetch(`${sb.base}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header: "x-api-key", keys }) });
  expect(res.ok).toBe(true);
}
const logOf = async (sb: Sandbox) => ((await (await fetch(`${sb.base}/_sandbox/authorization-log`)).json()) as { requests: SandboxRequest[] }).requests;
const liveCredentials = async () => ((await activeBundle(s.t.db, s.fleetId))!.content as unknown as BundleContent).credentials ?? [];

async function callAs(tenant: string): Promise<Response> {
  const bearer = await s.token("tickets:read", { tenant, sub: `user-${tenant}` });
  return s.rpc(initialize, { authorization: `Bearer ${bearer}` });
}

beforeAll(async () => {
  s = await startAgentStack();
  moved = await startSandbox();
}, 120_000);

afterAll(async () => {
  await moved?.stop();
  await s?.stop();
});

describe("vault entries are bound to their upstream origin", () => {
  it("an upstream origin change suspends every tenant's entry; the new host never receives a secret until its tenant confirms", async () => {
    const oldOrigin = new URL(s.sandbox.url).origin;
    const newOrigin = new URL(moved.url).origin;
    expect(newOrigin).not.toBe(oldOrigin);
    await s.setApiKeys([KEY_A, KEY_A2, KEY_B]);
    await setKeys(moved, [KEY_A, KEY_A2, KEY_B]);

    let rev = s.agent.sync.current!.content.manifest.revision;
    const a = await createEntry(s.owner.ctx, { serverId: s.serverId, tenantId: s.tenantA, name: "key A", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY_A }, s.kek);
    const b = await createEntry(s.owner.ctx, { serverId: s.serverId, tenantId: s.tenantB, name: "key B", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY_B }, s.kek);
    expect(a.boundOrigin).toBe(oldOrigin);
    await s.waitRevision(rev + 2);
    expect((await liveCredentials()).every((c) => c.origin === oldOrigin && !c.suspended)).toBe(true);
    // Before the change both tenants' calls carry their keys to the old host.
    expect((await callAs(s.tenantA)).status).toBe(200);
    expect((await callAs(s.tenantB)).status).toBe(200);
    const oldLog = await logOf(s.sandbox);
    expect(oldLog.some((r) => r.apiKey === KEY_A)).toBe(true);
    expect(oldLog.some((r) => r.apiKey === KEY_B)).toBe(true);

    // Tenant A's side (the server's owner) points the upstream at another host, and publishes.
    rev = s.agent.sync.current!.content.manifest.revision;
    await updateServer(s.owner.ctx, s.serverId, { upstreamUrl: moved.url }, s.kek);
    const suspended = await liveCredentials();
    expect(suspended).toHaveLength(2);
    for (const c of suspended) expect(c).toMatchObject({ origin: oldOrigin, suspended: { from: oldOrigin, to: newOrigin } });
    const trail = await s.t.db.select().from(auditEvents).where(eq(auditEvents.action, "vault.suspend"));
    expect(trail.map((e) => e.targetId).sort()).toEqual([a.id, b.id].sort());
    await publishBundle(s.owner.ctx, s.fleetId, { note: "upstream moved" }, s.kek);
    await until(() => (s.agent.sync.current?.content.manifest.revision ?? 0) > rev + 1 && s.agent.sync.current!.content.servers[0]!.upstreamUrl === moved.url);

    // The agent fails closed for both tenants: no call with the old secret, none without a credential.
    for (const tenant of [s.tenantA, s.tenantB]) {
      const res = await callAs(tenant);
      expect(res.status).toBe(502);
      expect(JSON.stringify(await res.json())).toContain("Upstream credential unavailable");
    }
    // The broker refuses a suspended entry too (an agent that ignored the bundle gets nothing).
    const brokered = await fetch(`${s.cp.url}/api/v1/agent/credentials`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.agent.sync.agentKey!}`, "content-type": "application/json" },
      body: JSON.stringify({ serverId: s.serverId, tenantId: s.tenantA }),
    });
    expect(brokered.status).toBe(409);
    expect(await brokered.text()).not.toContain(KEY_A);
    // The vault page shows the suspension with the old and the new origin.
    expect(await getEntry(s.owner.ctx, b.id)).toMatchObject({ suspended: true, boundOrigin: oldOrigin, upstreamOrigin: newOrigin });
    expect((await listEntries(s.owner.ctx, { serverId: s.serverId })).items.every((e) => e.suspended)).toBe(true);
    // The new host saw no secret at all.
    expect((await logOf(moved)).filter((r) => r.apiKey !== null)).toEqual([]);

    // Only a user allowed to write that secret confirms it: tenant A's admin cannot confirm tenant B's entry.
    const adminA = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
    const denied = await confirmOrigin(adminA.ctx, b.id, { origin: newOrigin }, s.kek).then(
      () => null,
      (e: unknown) => e as { code?: string },
    );
    expect(["not_found", "forbidden"]).toContain(denied?.code);
    // A confirmation names the origin it confirms: a stale one is refused.
    await expectAppError(confirmOrigin(adminA.ctx, a.id, { origin: oldOrigin }, s.kek), "conflict");

    rev = s.agent.sync.current!.content.manifest.revision;
    const confirmed = await confirmOrigin(adminA.ctx, a.id, { origin: newOrigin }, s.kek);
    expect(confirmed).toMatchObject({ suspended: false, boundOrigin: newOrigin });
    const [event] = await s.t.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "vault.confirm_origin"), eq(auditEvents.targetId, a.id)));
    expect(event).toMatchObject({ actorId: adminA.user.id, before: { boundOrigin: oldOrigin }, after: { boundOrigin: newOrigin } });
    await s.waitRevision(rev + 1);

    // Now tenant A's key reaches the new host; tenant B's stays suspended and never does.
    expect((await callAs(s.tenantA)).status).toBe(200);
    expect((await callAs(s.tenantB)).status).toBe(502);
    const newLog = await logOf(moved);
    expect(newLog.some((r) => r.apiKey === KEY_A && r.accepted)).toBe(true);
    expect(newLog.some((r) => r.apiKey === KEY_B)).toBe(false);

    // Re-entering the secret (a rotation) binds it to the current origin as well.
    rev = s.agent.sync.current!.content.manifest.revision;
    const rotated = await rotateEntry(s.owner.ctx, b.id, { secret: KEY_B, graceSeconds: 0 }, s.kek);
    expect(rotated).toMatchObject({ suspended: false, boundOrigin: newOrigin });
    await s.waitRevision(rev + 1);
    expect((await callAs(s.tenantB)).status).toBe(200);
    expect((await logOf(moved)).some((r) => r.apiKey === KEY_B && r.accepted)).toBe(true);
  });
});
