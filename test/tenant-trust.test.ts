/**
 * Trust is granted by a tenant (issue 10 defect 1, issue 13 part 1), end to
 * end with a real agent, the control plane's agent API, the sandbox upstream
 * and real issuers: the owning tenant's admin edits its shared server's
 * issuers, and a token of an issuer that admin controls, claiming the other
 * tenant, is refused with 401 before anything reaches the upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eq } from "drizzle-orm";
import { tenantIssuers } from "@/db/schema";
import { publishBundle } from "@/lib/bundles/service";
import { qualifiedUser } from "@/lib/enforcement/token";
import { createServerInput, updateServerInput } from "@/lib/servers/schemas";
import { createServer, updateServer } from "@/lib/servers/service";
import { createTenantIssuer, deleteTenantIssuer, listTenantIssuers, tenantIssuerInput } from "@/lib/tenants/trust";
import { startAgentStack, startIssuer, type AgentStack, type Issuer } from "./agent-proc-harness";
import { makeTenant, makeUser, uniq, type MadeUser } from "./db";

let s: AgentStack;
let evil: Issuer;
let adminA: MadeUser;
let adminB: MadeUser;

const listTickets = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "list_tickets", arguments: {} } };
const publish = async (note: string) => {
  const b = await publishBundle(s.owner.ctx, s.fleetId, { note }, s.kek);
  await s.waitRevision(b.revision);
};

beforeAll(async () => {
  s = await startAgentStack();
  evil = await startIssuer();
  adminA = await makeUser(s.t.db, { memberships: [[s.tenantA, "admin"]] });
  adminB = await makeUser(s.t.db, { memberships: [[s.tenantB, "admin"]] });
}, 120_000);

afterAll(async () => {
  await evil?.close();
  await s?.stop();
});

describe("a shared server's owner cannot grant trust for another tenant", () => {
  it("the owning tenant's admin adds an issuer it controls; its token claiming tenant B is refused (401) and never reaches the upstream", async () => {
    const current = s.agent.sync.current!.content.servers.find((x) => x.id === s.serverId)!;
    const issuers = [...current.issuers, { issuer: evil.issuer, jwksUri: evil.jwksUri, discovery: false, algorithms: ["ES256"] }];
    await updateServer(adminA.ctx, s.serverId, updateServerInput.parse({ issuers }));
    await publish("owner adds its issuer");

    // The server advertises it, tenant A (whose admin acted) trusts it, tenant B does not.
    const served = s.agent.sync.current!.content.servers.find((x) => x.id === s.serverId)!;
    expect(served.prm.authorization_servers).toContain(evil.issuer);
    expect(served.trust.filter((e) => e.issuer === evil.issuer).map((e) => e.tenantId)).toEqual([s.tenantA]);
    expect((await listTenantIssuers(adminB.ctx, s.tenantB)).map((e) => e.issuer)).not.toContain(evil.issuer);

    // The agent's own catalogue check lists tools after each new bundle: count everything else.
    const calls = async () => (await s.upstreamLog()).filter((r) => r.client !== "mandate-catalog").length;
    const before = await calls();
    const forged = await evil.sign({ sub: "mallory", tenant: s.tenantB, client_id: "test-client", scope: "tickets:read tickets:write" }, s.resourceUri);
    const res = await s.rpc(listTickets, { authorization: `Bearer ${forged}` });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    await res.body?.cancel();
    expect(await calls()).toBe(before);

    // The same issuer acts for the tenant that trusts it (A's own choice), and B's own issuer still works for B.
    const own = await evil.sign({ sub: "mallory", tenant: s.tenantA, client_id: "test-client", scope: "tickets:read" }, s.resourceUri);
    const ok = await s.rpc({ jsonrpc: "2.0", id: 2, method: "ping" }, { authorization: `Bearer ${own}` });
    expect(ok.status).not.toBe(401);
    await ok.body?.cancel();
    const b = await s.token("tickets:read", { tenant: s.tenantB });
    const okB = await s.rpc({ jsonrpc: "2.0", id: 3, method: "ping" }, { authorization: `Bearer ${b}` });
    expect(okB.status).not.toBe(401);
    await okB.body?.cancel();
  });

  it("tenant B's own trust is changed only by B's admins; removing it refuses B's tokens at once, without a publish", async () => {
    const entries = await listTenantIssuers(adminB.ctx, s.tenantB);
    const mine = entries.find((e) => e.issuer === s.issuer.issuer)!;
    expect(mine.tenantMapping).toEqual({ mode: "claim", claim: "tenant", values: [s.tenantB] });
    // The owner's admin cannot see or edit B's trust.
    await expect(listTenantIssuers(adminA.ctx, s.tenantB)).rejects.toMatchObject({ code: "not_found" });
    await expect(
      createTenantIssuer(adminA.ctx, s.tenantB, tenantIssuerInput.parse({ issuer: evil.issuer, jwksUri: evil.jwksUri, discovery: false, tenantMapping: { mode: "issuer" } })),
    ).rejects.toMatchObject({ code: "not_found" });
    await expect(deleteTenantIssuer(adminA.ctx, s.tenantB, mine.id, s.kek)).rejects.toMatchObject({ code: "not_found" });
    // An id of B's entry under A's tenant is not found either (the tenant comes from the loaded row).
    await expect(deleteTenantIssuer(adminA.ctx, s.tenantA, mine.id, s.kek)).rejects.toMatchObject({ code: "not_found" });

    // Removing trust needs no publish: every live bundle carrying it is republished without it at once.
    const b = await s.token("tickets:read", { tenant: s.tenantB });
    const before = await s.rpc({ jsonrpc: "2.0", id: 4, method: "ping" }, { authorization: `Bearer ${b}` });
    expect(before.status).not.toBe(401);
    await before.body?.cancel();
    const revision = s.agent.sync.current!.content.manifest.revision;
    await deleteTenantIssuer(adminB.ctx, s.tenantB, mine.id, s.kek);
    await s.waitRevision(revision + 1);
    const served = s.agent.sync.current!.content.servers.find((x) => x.id === s.serverId)!;
    expect(served.trust.some((e) => e.tenantId === s.tenantB && e.issuer === s.issuer.issuer)).toBe(false);
    expect(served.trust.some((e) => e.tenantId === s.tenantA && e.issuer === s.issuer.issuer)).toBe(true);
    const res = await s.rpc({ jsonrpc: "2.0", id: 4, method: "ping" }, { authorization: `Bearer ${b}` });
    expect(res.status).toBe(401);
    await res.body?.cancel();
    // Trusting again (a widening) arrives with the next publish.
    await createTenantIssuer(
      adminB.ctx,
      s.tenantB,
      tenantIssuerInput.parse({ issuer: s.issuer.issuer, jwksUri: s.issuer.jwksUri, discovery: false, algorithms: ["ES256"], tenantMapping: { mode: "claim", claim: "tenant", values: [s.tenantB] } }),
    );
    await publish("B trusts the test issuer again");
    const again = await s.rpc({ jsonrpc: "2.0", id: 7, method: "ping" }, { authorization: `Bearer ${b}` });
    expect(again.status).not.toBe(401);
    await again.body?.cancel();
  });

  it("the same sub from two issuers is two users: revoking one leaves the other", async () => {
    // Tenant A trusts the test issuer and the owner-added one (previous test); both say sub "carol".
    const viaTest = await s.token("tickets:read", { sub: "carol" });
    const viaEvil = await evil.sign({ sub: "carol", tenant: s.tenantA, client_id: "test-client", scope: "tickets:read" }, s.resourceUri);
    const { revocations } = await import("@/db/schema");
    const { newId } = await import("@/lib/ids");
    await s.t.db
      .insert(revocations)
      .values({ id: newId("revocation"), tenantId: s.tenantA, userId: qualifiedUser(evil.issuer, "carol"), before: new Date(Date.now() + 2000), createdBy: s.owner.user.id });
    await publish("revoke carol of the owner's issuer");
    const r1 = await s.rpc({ jsonrpc: "2.0", id: 5, method: "ping" }, { authorization: `Bearer ${viaEvil}` });
    expect(r1.status).toBe(401);
    await r1.body?.cancel();
    const r2 = await s.rpc({ jsonrpc: "2.0", id: 6, method: "ping" }, { authorization: `Bearer ${viaTest}` });
    expect(r2.status).not.toBe(401);
    await r2.body?.cancel();
  });
});

describe("sharing and creating", () => {
  it("creating a server trusts its issuers for the owner; sharing offers them to the new tenant; the owner's later edits never reach it", async () => {
    const c = (await makeTenant(s.t.db, s.owner.actor)).id;
    const srv = (await createServer(
      adminA.ctx,
      createServerInput.parse({
        tenantId: s.tenantA,
        name: uniq("Trust "),
        resourceUri: `https://mcp.trust.test/${uniq()}`,
        upstreamUrl: "http://127.0.0.1:9/mcp",
        issuers: [{ issuer: "https://idp-one.trust.test" }],
      }),
    ))!;
    const trustOf = async (tenantId: string) => (await s.t.db.select().from(tenantIssuers).where(eq(tenantIssuers.tenantId, tenantId))).map((r) => r.issuer);
    expect(await trustOf(s.tenantA)).toContain("https://idp-one.trust.test");
    // An admin of both tenants shares it with C: C is offered the server's issuers, mapped to C only.
    const both = await makeUser(s.t.db, {
      memberships: [
        [s.tenantA, "admin"],
        [c, "admin"],
      ],
    });
    await updateServer(both.ctx, srv.id, updateServerInput.parse({ tenantIds: [c] }));
    const [row] = await s.t.db.select().from(tenantIssuers).where(eq(tenantIssuers.tenantId, c));
    expect(row).toMatchObject({ issuer: "https://idp-one.trust.test", tenantMapping: { mode: "claim", claim: "tenant", values: [c] } });
    // A's admin later adds an issuer to the shared server: A trusts it, C does not.
    await updateServer(adminA.ctx, srv.id, updateServerInput.parse({ issuers: [{ issuer: "https://idp-one.trust.test" }, { issuer: "https://idp-two.trust.test" }] }));
    expect(await trustOf(s.tenantA)).toContain("https://idp-two.trust.test");
    expect(await trustOf(c)).toEqual(["https://idp-one.trust.test"]);
  });
});
