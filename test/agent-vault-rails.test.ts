/**
 * Rotation's safety rails with a real agent (issue 14): "make this version
 * current again" reaches the agent through the live bundle section as a
 * rotation does (the upstream receives the restored version's key on the
 * next call), "end grace now" stops the old version at once (the broker
 * refuses it, the upstream never sees it again), and the agent reports the
 * version it holds in its heartbeat, which the vault page lists per agent.
 */
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "@/db/schema";
import { endGrace, makeVersionCurrent } from "@/lib/vault/rollback";
import { createEntry, rotateEntry } from "@/lib/vault/service";
import { entryAgents } from "@/lib/vault/usage";
import { uniq } from "./db";
import { startAgentStack, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;
const K1 = `rails-k1-${uniq()}`;
const K2 = `rails-k2-${uniq()}`;
const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "rails-test", version: "1" } } };

async function call(): Promise<number> {
  const bearer = await s.token("tickets:read");
  return (await s.rpc(initialize, { authorization: `Bearer ${bearer}` })).status;
}
/** The key the upstream received on its last request. */
const lastKey = async () => (await s.upstreamLog()).at(-1)?.apiKey ?? null;
const rev = () => s.agent.sync.current!.content.manifest.revision;

beforeAll(async () => {
  s = await startAgentStack();
}, 120_000);
afterAll(async () => {
  await s?.stop();
});

describe("make current again and end grace, enforced by a real agent", () => {
  it("the upstream sees the chosen version's key; after end-grace the old version is neither served nor sent", async () => {
    await s.setApiKeys([K1, K2]);
    let r = rev();
    const e = await createEntry(s.owner.ctx, { serverId: s.serverId, tenantId: s.tenantA, name: "rails key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: K1 }, s.kek);
    await s.waitRevision(r + 1);
    expect(await call()).toBe(200);
    expect(await lastKey()).toBe(K1);

    r = rev();
    await rotateEntry(s.owner.ctx, e.id, { secret: K2, graceSeconds: 3600 }, s.kek);
    await s.waitRevision(r + 1);
    expect(await call()).toBe(200);
    expect(await lastKey()).toBe(K2);

    // Roll back to v1: the live bundle names v1 and the agent refetches it before the next call.
    r = rev();
    const t0 = performance.now();
    await makeVersionCurrent(s.owner.ctx, e.id, { version: 1, replacing: 2, graceSeconds: 3600 }, s.kek);
    const committed = performance.now();
    await s.waitRevision(r + 1);
    console.log(`[rails] make-current: committed in ${Math.round(committed - t0)} ms, agent on the new revision ${Math.round(performance.now() - committed)} ms after the commit`);
    expect(s.agent.sync.current!.content.credentials?.find((c) => c.entryId === e.id)?.version).toBe(1);
    expect(await call()).toBe(200);
    expect(await lastKey()).toBe(K1);

    // The agent reports what it holds; the vault page lists it per agent.
    expect(await s.agent.sync.heartbeat()).toBe(true);
    const agents = await entryAgents(s.owner.ctx, e.id);
    expect(agents.items).toHaveLength(1);
    expect(agents.items[0]).toMatchObject({ name: "vault-agent", fleetId: s.fleetId, use: { state: "holds", version: 1, versionStatus: "current" } });

    // v2 is in its grace: the broker still serves it to an agent naming it (an agent on an older bundle).
    const brokered = (version: number) =>
      fetch(`${s.cp.url}/api/v1/agent/credentials`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.agent.sync.agentKey!}`, "content-type": "application/json" },
        body: JSON.stringify({ serverId: s.serverId, tenantId: s.tenantA, version }),
      });
    expect((await brokered(2)).status).toBe(200);
    await endGrace(s.owner.ctx, e.id, { version: 2 }, s.kek);
    const refused = await brokered(2);
    expect(refused.status).toBe(404);
    expect(await refused.text()).not.toContain(K2);
    // The upstream stops accepting v2 too (its own side of ending the overlap): calls keep working with v1 only.
    await s.setApiKeys([K1]);
    const before = (await s.upstreamLog()).length;
    for (let i = 0; i < 3; i++) expect(await call()).toBe(200);
    const after = (await s.upstreamLog()).slice(before);
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(after.every((l) => l.apiKey === K1)).toBe(true);

    const trail = await s.t.db
      .select({ action: auditEvents.action })
      .from(auditEvents)
      .where(and(eq(auditEvents.targetId, e.id)));
    expect(trail.map((t) => t.action)).toEqual(expect.arrayContaining(["vault.make_current", "vault.end_grace"]));
  });
});
