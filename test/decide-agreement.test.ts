/**
 * The simulator and a real agent agree (issue 10, "One decision"): a revoked
 * grant, an unapproved client and a drifted tool are denied by both. Before
 * decide(), the simulator ran only Cedar and answered "allow" to all three.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt } from "jose";
import { revokeUser, setClientApproval } from "@/lib/grants/service";
import { importCatalog } from "@/lib/catalog/service";
import { simulate, simulateDraft } from "@/lib/policy/service";
import { startAgentStack, until, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;

beforeAll(async () => {
  s = await startAgentStack();
}, 120_000);
afterAll(() => s?.stop());

/** What the agent answers a tools/call through a real MCP client: allow (answered by the upstream) or deny (refused at connect, or a denial). */
async function agentSays(bearer: string, tool: string, args: Record<string, unknown>): Promise<"allow" | "deny"> {
  let client;
  try {
    client = await s.connect(bearer);
  } catch (err) {
    if (process.env.DECIDE_DEBUG) console.log("DECIDE_DEBUG connect", err instanceof Error ? err.message : err);
    return "deny"; // 401: the agent refused the token
  }
  try {
    // Any answer of the upstream's own (even a tool error such as "no ticket") means the agent forwarded the call.
    await client.callTool({ name: tool, arguments: args });
    return "allow";
  } catch (err) {
    if (process.env.DECIDE_DEBUG) console.log("DECIDE_DEBUG", err instanceof Error ? err.message : err);
    return "deny";
  } finally {
    await client.close().catch(() => {});
  }
}

/** The simulator's decision against the revision the agent enforces, for the principal of `bearer`. */
async function simulatorSays(bearer: string, tool: string, args: Record<string, unknown>, user: string) {
  const claims = decodeJwt(bearer);
  const revision = s.agent.sync.current!.content.manifest.revision;
  return simulate(s.owner.ctx, {
    tenantId: String(claims.tenant),
    serverId: s.serverId,
    fleetId: s.fleetId,
    revision,
    issuedAt: new Date((claims.iat ?? 0) * 1000).toISOString(),
    request: { user, groups: [], client: String(claims.client_id), scopes: String(claims.scope).split(" "), tool, action: "call_tool", args },
  });
}

/** The user id the agent decided for (namespacing is the token validator's business): read back from its decision log. */
async function userOf(bearer: string): Promise<string> {
  const before = (await s.walLines()).length;
  expect(await agentSays(bearer, "get_ticket", { id: "T-1" })).toBe("allow");
  await until(async () => (await s.walLines()).length > before, 5_000);
  const lines = await s.walLines();
  return lines[lines.length - 1]!.user!;
}

describe("the simulator and the agent agree", () => {
  it("on a revoked grant", async () => {
    const bearer = await s.token("tickets:read", { sub: "rita" });
    const user = await userOf(bearer);
    expect((await simulatorSays(bearer, "get_ticket", { id: "T-1" }, user)).decision).toBe("allow");
    const rev = s.agent.sync.current!.content.manifest.revision;
    await revokeUser(s.owner.ctx, s.tenantA, user, { reason: "test" }, s.kek);
    await s.waitRevision(rev + 1);
    expect(await agentSays(bearer, "get_ticket", { id: "T-1" })).toBe("deny");
    expect(await simulatorSays(bearer, "get_ticket", { id: "T-1" }, user)).toMatchObject({ decision: "deny", stage: "revoked" });
  });

  it("on an unapproved client", async () => {
    const bearer = await s.token("tickets:read", { sub: "vic", client_id: "needs-ok" });
    const user = await userOf(bearer);
    expect((await simulatorSays(bearer, "get_ticket", { id: "T-1" }, user)).decision).toBe("allow");
    const rev = s.agent.sync.current!.content.manifest.revision;
    await setClientApproval(s.owner.ctx, s.tenantA, true, s.kek);
    await s.waitRevision(rev + 1);
    try {
      expect(await agentSays(bearer, "get_ticket", { id: "T-1" })).toBe("deny");
      expect(await simulatorSays(bearer, "get_ticket", { id: "T-1" }, user)).toMatchObject({ decision: "deny", stage: "client" });
    } finally {
      const now = s.agent.sync.current!.content.manifest.revision;
      await setClientApproval(s.owner.ctx, s.tenantA, false, s.kek);
      await s.waitRevision(now + 1);
    }
  });

  it("on a tool that changed upstream since it was approved", async () => {
    const bearer = await s.token("tickets:read", { sub: "wes" });
    const user = await userOf(bearer);
    expect((await simulatorSays(bearer, "list_tickets", {}, user)).decision).toBe("allow");
    const res = await fetch(`${s.sandbox.base}/_sandbox/tools/list_tickets`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ description: "Now also deletes tickets." }),
    });
    expect(res.ok).toBe(true);
    try {
      // The agent finds the change in the upstream's list; the control plane when it imports the catalogue.
      const c = await s.connect(bearer);
      try {
        const names = (await c.listTools()).tools.map((t) => t.name);
        expect(names).toContain("get_ticket");
        expect(names).not.toContain("list_tickets");
      } finally {
        await c.close();
      }
      await importCatalog(s.owner.ctx, s.serverId);
      expect(await agentSays(bearer, "list_tickets", {})).toBe("deny");
      expect(await simulatorSays(bearer, "list_tickets", {}, user)).toMatchObject({ decision: "deny", stage: "drift" });
      const draft = await simulateDraft(s.owner.ctx, {
        tenantId: s.tenantA,
        serverId: s.serverId,
        request: { user, groups: [], client: "test-client", scopes: ["tickets:read"], tool: "list_tickets", action: "call_tool", args: {} },
      });
      expect(draft).toMatchObject({ decision: "deny", stage: "drift" });
    } finally {
      await fetch(`${s.sandbox.base}/_sandbox/reset`, { method: "POST" });
    }
  });
});
