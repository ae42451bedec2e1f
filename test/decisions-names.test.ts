import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agents } from "@/db/schema";
import { decisionExportQuery, exportDecisions } from "@/lib/decisions/export";
import { resolveNames } from "@/lib/decisions/names";
import { decisionSearchQuery, getDecision, searchDecisions } from "@/lib/decisions/query";
import { createFleet } from "@/lib/fleets/service";
import { createPolicy } from "@/lib/policy/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { makeServer } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: { id: string; name: string };
let tenantB: { id: string; name: string };
let serverA: { id: string; name: string };
let serverB: { id: string; name: string };
let fleetA: { id: string; name: string };
let fleetB: { id: string; name: string };
let policyA: { id: string; name: string };
let policyB: { id: string; name: string };
const agentA = { id: `agt_${uniq("a")}`.replace(/\s/g, ""), name: "agent of A" };
const agentB = { id: `agt_${uniq("b")}`.replace(/\s/g, ""), name: "agent of B" };
const now = Date.now();

const policy = async (tenantId: string, serverId: string) =>
  (await createPolicy(owner.ctx, { tenantId, serverId, name: uniq("policy "), description: "", kind: "cedar", enabled: true, cedar: "permit(principal, action, resource);" } as never)) as unknown as {
    id: string;
    name: string;
  };

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)) as { id: string; name: string };
  tenantB = (await makeTenant(t.db, owner.actor)) as { id: string; name: string };
  adminA = await makeUser(t.db, { memberships: [[tenantA.id, "admin"]] });
  serverA = (await makeServer(owner.ctx, tenantA.id))! as { id: string; name: string };
  serverB = (await makeServer(owner.ctx, tenantB.id))! as { id: string; name: string };
  fleetA = (await createFleet(owner.ctx, { name: uniq("fleet A "), serverIds: [serverA.id] }))! as { id: string; name: string };
  fleetB = (await createFleet(owner.ctx, { name: uniq("fleet B "), serverIds: [serverB.id] }))! as { id: string; name: string };
  await t.db.insert(agents).values([
    { id: agentA.id, fleetId: fleetA.id, name: agentA.name, keyHash: "x" },
    { id: agentB.id, fleetId: fleetB.id, name: agentB.name, keyHash: "x" },
  ]);
  policyA = await policy(tenantA.id, serverA.id);
  policyB = await policy(tenantB.id, serverB.id);
  await insertDecisions(t.db, [
    { atMs: now - 60_000, tenantId: tenantA.id, serverId: serverA.id, fleetId: fleetA.id, agentId: agentA.id, tool: "read", determining: [policyA.id], latencyUs: 216122 },
    { atMs: now - 50_000, tenantId: tenantB.id, serverId: serverB.id, fleetId: fleetB.id, agentId: agentB.id, tool: "read", determining: [policyB.id] },
  ]);
});
afterAll(() => t.close());

const all = { tenant: [] as string[], server: [] as string[], fleet: [] as string[], agent: [] as string[], policy: [] as string[] };

describe("decision names", () => {
  it("resolves the names of tenant, server, fleet, agent and policy for the owner", async () => {
    const n = await resolveNames(owner.ctx, {
      tenant: [tenantA.id, tenantB.id],
      server: [serverA.id, serverB.id],
      fleet: [fleetA.id, fleetB.id],
      agent: [agentA.id, agentB.id],
      policy: [policyA.id, policyB.id],
    });
    expect(n.tenant).toEqual({ [tenantA.id]: tenantA.name, [tenantB.id]: tenantB.name });
    expect(n.server).toEqual({ [serverA.id]: serverA.name, [serverB.id]: serverB.name });
    expect(n.fleet).toEqual({ [fleetA.id]: fleetA.name, [fleetB.id]: fleetB.name });
    expect(n.agent).toEqual({ [agentA.id]: agentA.name, [agentB.id]: agentB.name });
    expect(n.policy).toEqual({ [policyA.id]: policyA.name, [policyB.id]: policyB.name });
  });

  it("never gives a tenant admin another tenant's names, even when asked by id", async () => {
    const n = await resolveNames(adminA.ctx, {
      ...all,
      tenant: [tenantA.id, tenantB.id],
      server: [serverA.id, serverB.id],
      fleet: [fleetA.id, fleetB.id],
      agent: [agentA.id, agentB.id],
      policy: [policyA.id, policyB.id],
    });
    expect(n.tenant).toEqual({ [tenantA.id]: tenantA.name });
    expect(n.server).toEqual({ [serverA.id]: serverA.name });
    expect(n.fleet).toEqual({ [fleetA.id]: fleetA.name });
    expect(n.agent).toEqual({ [agentA.id]: agentA.name });
    expect(n.policy).toEqual({ [policyA.id]: policyA.name });
  });

  it("names the generated scope rules of a readable server only", async () => {
    const refs = { policy: [`scope:${serverA.id}:tickets:read`, `scope:${serverB.id}:tickets:write`] };
    expect((await resolveNames(owner.ctx, refs)).policy).toEqual({ [`scope:${serverA.id}:tickets:read`]: "scope tickets:read", [`scope:${serverB.id}:tickets:write`]: "scope tickets:write" });
    expect((await resolveNames(adminA.ctx, refs)).policy).toEqual({ [`scope:${serverA.id}:tickets:read`]: "scope tickets:read" });
  });

  it("ignores malformed ids and bounds the lookup", async () => {
    const n = await resolveNames(owner.ctx, { policy: ["x'; drop table policies; --", "", ...Array.from({ length: 2000 }, (_, i) => `p${i}`)] });
    expect(n.policy).toEqual({});
  });

  it("a search page carries the names of its rows, scoped to the viewer", async () => {
    const page = await searchDecisions(adminA.ctx, decisionSearchQuery.parse({}));
    expect(page.items.map((i) => i.determining)).toEqual([[policyA.id]]);
    expect(page.names.policy).toEqual({ [policyA.id]: policyA.name });
    expect(page.names.server).toEqual({ [serverA.id]: serverA.name });
    expect(page.names.tenant).toEqual({ [tenantA.id]: tenantA.name });
    const ownerPage = await searchDecisions(owner.ctx, decisionSearchQuery.parse({}));
    expect(Object.keys(ownerPage.names.policy).sort()).toEqual([policyA.id, policyB.id].sort());
  });

  it("the detail has names and the latency in milliseconds", async () => {
    const page = await searchDecisions(adminA.ctx, decisionSearchQuery.parse({}));
    const d = await getDecision(adminA.ctx, page.items[0]!.id);
    expect(d.latencyMs).toBe(216.1);
    expect(d.names.agent).toEqual({ [agentA.id]: agentA.name });
    expect(d.names.fleet).toEqual({ [fleetA.id]: fleetA.name });
  });

  it("the CSV export has name columns, scoped to the viewer", async () => {
    const csv = async (ctx: typeof owner.ctx) => {
      const text = await new Response(exportDecisions(ctx, decisionExportQuery.parse({ format: "csv" })).stream).text();
      const [head, ...lines] = text.trim().split("\r\n");
      const cols = head!.split(",");
      // No cell here holds a comma or a quote (names are "policy <n>", "fleet A <n>"…).
      return lines.map((l) => Object.fromEntries(l.split(",").map((v, i) => [cols[i], v])));
    };
    const mine = await csv(adminA.ctx);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ tenant_name: tenantA.name, server_name: serverA.name, fleet_name: fleetA.name, agent_name: agentA.name, policy_names: policyA.name, latency_ms: "216.1" });
    const all = await csv(owner.ctx);
    expect(all.map((r) => r.policy_names).sort()).toEqual([policyA.name, policyB.name].sort());
  });
});
