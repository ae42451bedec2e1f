/**
 * The grants services against a real agent: revoking through lib/grants
 * (not a hand-made row) makes the agent refuse the token at once; tokens
 * issued after the cut-off work; client approval set through the service is
 * enforced; a trusted issuer with a revocation endpoint marks the row "sent".
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq } from "drizzle-orm";
import { grants, revocations } from "@/db/schema";
import { qualifiedUser } from "@/lib/enforcement/token";
import { learnFromDecisions } from "@/lib/grants/learn";
import { approveClient, listClients, revokeClient, revokeGrant, setClientApproval } from "@/lib/grants/service";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;

/** The HTTP status of an initialize with this token (401 when the agent refuses it). */
const probe = async (bearer: string) =>
  (
    await s.rpc(
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "probe", version: "1" } } },
      { authorization: `Bearer ${bearer}` },
    )
  ).status;

beforeAll(async () => {
  s = await startAgentStack({
    extraIssuers: [{ issuer: "https://as.example/", jwksUri: "https://as.example/jwks", discovery: false, algorithms: ["RS256"], revocationEndpoint: "https://as.example/revoke" }],
  });
}, 120_000);
afterAll(() => s?.stop());

describe("revocation through the service, enforced by a real agent", () => {
  it("refuses the grant's old token within the republish, and accepts a token issued afterwards", async () => {
    const old = await s.token("tickets:read", { sub: "rita" });
    expect(await probe(old)).toBe(200);
    await learnFromDecisions(s.t.db, [
      { tenantId: s.tenantA, serverId: s.serverId, userId: qualifiedUser(s.issuer.issuer, "rita"), clientId: "test-client", scopes: ["tickets:read"], at: new Date(), outcome: "allow" },
    ]);
    const [grant] = await s.t.db
      .select()
      .from(grants)
      .where(and(eq(grants.tenantId, s.tenantA), eq(grants.userId, qualifiedUser(s.issuer.issuer, "rita"))));
    const rev = s.agent.sync.current!.content.manifest.revision;
    const engine = s.agent.sync.current!.engine;

    const t0 = performance.now();
    const out = await revokeGrant(s.owner.ctx, grant!.id, { reason: "test" }, s.kek);
    const committed = performance.now() - t0;
    await until(async () => (await probe(old)) === 401, 5_000);
    const elapsed = performance.now() - t0;
    expect(s.agent.sync.current!.content.manifest.revision).toBeGreaterThan(rev);
    // Only a live section changed: the agent kept its engine (and its warm policy slices).
    expect(s.agent.sync.current!.engine).toBe(engine);
    expect(out.republished.map((r) => r.fleetId)).toEqual([s.fleetId]);
    // The issuer of the server declares a revocation endpoint: the row says the agents report refused tokens there.
    const [row] = await s.t.db.select().from(revocations).where(eq(revocations.grantId, grant!.id));
    expect(row!.upstreamRevocation).toMatchObject({ status: "sent", detail: expect.stringContaining("https://as.example/revoke") });
    console.log(`[grants-agent] revoke call → agent refuses: ${elapsed.toFixed(1)} ms (the call itself ${committed.toFixed(1)} ms)`);
    expect(elapsed).toBeLessThan(5_000);

    // Other users of the same client are untouched; a token issued after the cut-off works again.
    expect(await probe(await s.token("tickets:read", { sub: "sam" }))).toBe(200);
    await new Promise((r) => setTimeout(r, 1100)); // iat has whole-second precision
    expect(await probe(await s.token("tickets:read", { sub: "rita" }))).toBe(200);
    expect(await probe(old)).toBe(401);
  });

  it("revoking a client refuses every user's token of that client, in that tenant only", async () => {
    const a = await s.token("tickets:read", { sub: "uma", client_id: "shady" });
    const b = await s.token("tickets:read", { sub: "uma", client_id: "shady", tenant: s.tenantB });
    const other = await s.token("tickets:read", { sub: "uma", client_id: "fine" });
    expect([await probe(a), await probe(b), await probe(other)]).toEqual([200, 200, 200]);
    await revokeClient(s.owner.ctx, s.tenantA, "shady", { reason: "compromised" }, s.kek);
    await until(async () => (await probe(a)) === 401, 5_000);
    expect(await probe(b)).toBe(200);
    expect(await probe(other)).toBe(200);
  });
});

describe("client approval through the service", () => {
  it("denies an unapproved client once required, allows it once approved", async () => {
    const bearer = await s.token("tickets:read", { sub: "vic", client_id: "needs-ok" });
    await learnFromDecisions(s.t.db, [
      { tenantId: s.tenantA, serverId: s.serverId, userId: qualifiedUser(s.issuer.issuer, "vic"), clientId: "needs-ok", scopes: [], at: new Date(), outcome: "allow" },
    ]);
    const listed = await listClients(s.owner.ctx, s.tenantA);
    const client = listed.items.find((c) => c.clientId === "needs-ok")!;

    const callList = async () => {
      const c = await s.connect(bearer);
      try {
        return (await c.listTools()).tools.length;
      } finally {
        await c.close();
      }
    };
    expect(await callList()).toBeGreaterThan(0);
    let rev = s.agent.sync.current!.content.manifest.revision;
    await setClientApproval(s.owner.ctx, s.tenantA, true, s.kek);
    await s.waitRevision(rev + 1);
    expect(await callList()).toBe(0); // unapproved: the agent lists nothing

    rev = s.agent.sync.current!.content.manifest.revision;
    await approveClient(s.owner.ctx, client.id, s.kek);
    await s.waitRevision(rev + 1);
    expect(await callList()).toBeGreaterThan(0);
    await setClientApproval(s.owner.ctx, s.tenantA, false, s.kek);
  });
});
