/**
 * Upstream credentials end to end: the vault (lib/vault/service.ts), the
 * broker route over HTTP, the live bundle, a real agent and the sandbox
 * upstream requiring an API key; OAuth client credentials exchanged at the
 * sandbox authorization server (oidc-provider).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { createEntry, rotateEntry } from "@/lib/vault/service";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { uniq } from "./db";
import { registerClient } from "./auth-server-helpers";
import { startAgentStack, until, type AgentStack, type SandboxRequest } from "./agent-proc-harness";

let s: AgentStack & { extraTenantIds: string[] };
let as: AuthServer;
let tokenRequests = 0;
const KEY_A1 = `ka1-${uniq()}`;
const KEY_A2 = `ka2-${uniq()}`;
const KEY_A3 = `ka3-${uniq()}`;
const KEY_SHARED = `kshared-${uniq()}`;
const KEY_B = `kb-${uniq()}`;
let entryA: string;

const text = (r: unknown) => (r as { content: { text: string }[] }).content[0]!.text;

/** The log length once the upstream saw no request for 300 ms (the agent's own catalogue check after a new bundle is done). */
async function quiet(): Promise<number> {
  let n = (await s.upstreamLog()).length;
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const m = (await s.upstreamLog()).length;
    if (m === n) return n;
    n = m;
  }
}

/** The upstream requests logged since `from` (an index into the log), without the agent's own catalogue checks. */
async function since(from: number): Promise<SandboxRequest[]> {
  return (await s.upstreamLog()).slice(from).filter((r) => r.client !== "mandate-catalog");
}

async function broker(agentKey: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${s.cp.url}/api/v1/agent/credentials`, { method: "POST", headers: { authorization: `Bearer ${agentKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
}

beforeAll(async () => {
  s = await startAgentStack({ extraTenants: 1 });
  // The sandbox AS for the OAuth client credentials entry: its audience is the upstream.
  as = await startAuthServer({ resources: { [s.sandbox.url]: { scopes: ["tickets:read"] } } });
  as.provider.on("grant.success", () => void tokenRequests++);
}, 120_000);

afterAll(async () => {
  await as?.stop();
  await s?.stop();
});

describe("agent upstream credentials", () => {
  it("the upstream requires an API key: the agent injects the vault's key and never forwards the client token (POST, GET and DELETE)", async () => {
    await s.setApiKeys([KEY_A1]);
    const before = s.agent.sync.current!.content.manifest.revision;
    const entry = await createEntry(
      s.owner.ctx,
      { serverId: s.serverId, tenantId: s.tenantA, name: "tickets key A", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY_A1 },
      s.kek,
    );
    entryA = entry.id;
    await s.waitRevision(before + 1);
    expect(s.agent.sync.current!.content.credentials).toEqual([
      { entryId: entryA, serverId: s.serverId, tenantId: s.tenantA, kind: "api_key", placement: { in: "header", name: "x-api-key" }, version: 1, origin: new URL(s.sandbox.url).origin },
    ]);

    const from = (await s.upstreamLog()).length;
    const bearer = await s.token("tickets:read");
    const client = await s.connect(bearer);
    const out = await client.callTool({ name: "list_tickets", arguments: {} });
    expect(text(out)).toContain("Printer on fire");
    // Ends the session: a DELETE, which must carry the key too.
    await (client.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
    await client.close();

    const seen = await since(from);
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.every((r) => r.apiKey === KEY_A1 && r.accepted)).toBe(true);
    expect(seen.some((r) => r.method === "DELETE")).toBe(true);
    // The client's token never reached the upstream, in any header.
    expect(seen.every((r) => r.authorization === null)).toBe(true);
    expect(JSON.stringify(await s.upstreamLog())).not.toContain(bearer);
    // Not shown by metrics or logs either: the counters only count.
    const metrics = await (await fetch(`${s.agent.url}/metrics`)).text();
    expect(metrics).toMatch(/mandate_credential_resolutions_total\{result="fetched"\} [1-9]/);
    expect(metrics).not.toContain(KEY_A1);
  });

  it("without the key the upstream refuses: proves the check is real", async () => {
    const res = await fetch(s.sandbox.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    expect(res.status).toBe(401);
  });

  it("rotation: the next call carries the new key (timed under steady load); the old version resolves until its grace ends", async () => {
    await s.setApiKeys([KEY_A1, KEY_A2]); // the upstream's own overlap window
    const client = await s.connect(await s.token("tickets:read"));
    const from = (await s.upstreamLog()).length;
    let stop = false;
    let calls = 0;
    let failures = 0;
    const load = (async () => {
      while (!stop) {
        try {
          await client.callTool({ name: "get_ticket", arguments: { id: "T-100" } });
          calls++;
        } catch {
          failures++;
        }
        // Steady, not saturating: client, control plane and agent share this one event loop.
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => calls >= 5);
    const rev = s.agent.sync.current!.content.manifest.revision;
    await rotateEntry(s.owner.ctx, entryA, { secret: KEY_A2, graceSeconds: 600 }, s.kek);
    const committed = Date.now();
    await until(async () => (await since(from)).some((r) => r.apiKey === KEY_A2));
    stop = true;
    await load;
    const seen = await since(from);
    const first = seen.find((r) => r.apiKey === KEY_A2)!;
    const ms = first.at - committed;
    const installed = s.agent.sync.current!.installedAt - committed;
    console.log(
      `[vault] rotation commit → bundle installed on the agent: ${installed} ms; → first upstream call with the new key: ${ms} ms (${calls} calls, one every ~5 ms after the previous answer, revision ${rev} → ${s.agent.sync.current!.content.manifest.revision})`,
    );
    expect(ms).toBeLessThan(2_000);
    expect(failures).toBe(0);
    // Every call after the first new-key call carries the new key.
    expect(seen.filter((r) => r.at > first.at).every((r) => r.apiKey === KEY_A2)).toBe(true);
    // The upstream may now drop the old key: calls go on.
    await s.setApiKeys([KEY_A2]);
    expect(text(await client.callTool({ name: "get_ticket", arguments: { id: "T-100" } }))).toContain("T-100");
    await client.close();

    // The broker still resolves version 1 in its grace period, and version 2 as current.
    const key = s.agent.sync.agentKey!;
    const v1 = await broker(key, { serverId: s.serverId, tenantId: s.tenantA, version: 1 });
    expect(v1.status).toBe(200);
    expect(await v1.json()).toMatchObject({ entryId: entryA, version: 1, secret: KEY_A1 });
    expect(await (await broker(key, { serverId: s.serverId, tenantId: s.tenantA })).json()).toMatchObject({ version: 2, secret: KEY_A2 });
    // A one-second grace: version 2 resolves now, not after.
    await rotateEntry(s.owner.ctx, entryA, { secret: KEY_A3, graceSeconds: 1 }, s.kek);
    expect((await broker(key, { serverId: s.serverId, tenantId: s.tenantA, version: 2 })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_200));
    const gone = await broker(key, { serverId: s.serverId, tenantId: s.tenantA, version: 2 });
    expect(gone.status).toBe(404);
    expect(JSON.stringify(await gone.json())).not.toContain(KEY_A2);
    await s.setApiKeys([KEY_A3, KEY_SHARED, KEY_B]);
  });

  it("an agent of another fleet cannot resolve the credential (403)", async () => {
    const other = await createServer(
      s.owner.ctx,
      createServerInput.parse({ tenantId: s.tenantA, name: uniq("Other "), resourceUri: `https://other-${uniq()}.example/mcp`, upstreamUrl: "https://upstream.example/mcp" }),
    );
    const fleet = (await createFleet(s.owner.ctx, { name: uniq("Other fleet "), serverIds: [other!.id] }))!;
    const enrollment = await createEnrollmentToken(s.owner.ctx, fleet.id);
    const enrolled = await fetch(`${s.cp.url}/api/v1/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: enrollment.token, name: "intruder", version: "0.1.0" }),
    });
    expect(enrolled.status).toBe(201);
    const { agentKey } = (await enrolled.json()) as { agentKey: string };
    const res = await broker(agentKey, { serverId: s.serverId, tenantId: s.tenantA });
    expect(res.status).toBe(403);
    expect(JSON.stringify(await res.json())).not.toMatch(/ka\d-/);
    expect((await broker("mda_00000000000000000000000000000000.nope", { serverId: s.serverId, tenantId: s.tenantA })).status).toBe(401);
  });

  it("tenant A's entry is never used for tenant B: B uses the shared entry, then its own", async () => {
    const bToken = await s.token("tickets:read", { tenant: s.tenantB, sub: "bob" });
    // No entry for B and none shared: forwarded without a credential, so this upstream refuses it.
    let from = await quiet();
    const res = await s.rpc(
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "b", version: "1" } } },
      { authorization: `Bearer ${bToken}` },
    );
    expect(res.status).toBe(401);
    expect((await since(from)).map((r) => r.apiKey)).toEqual([null]);

    const rev = s.agent.sync.current!.content.manifest.revision;
    const shared = await createEntry(
      s.owner.ctx,
      { serverId: s.serverId, tenantId: null, name: "shared key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY_SHARED },
      s.kek,
    );
    await s.waitRevision(rev + 1);
    from = await quiet();
    const b1 = await s.connect(bToken);
    await b1.callTool({ name: "list_tickets", arguments: {} });
    await b1.close();
    expect(new Set((await since(from)).map((r) => r.apiKey))).toEqual(new Set([KEY_SHARED]));
    // A's calls still use A's own entry.
    from = (await s.upstreamLog()).length;
    const a = await s.connect(await s.token("tickets:read"));
    await a.callTool({ name: "list_tickets", arguments: {} });
    await a.close();
    expect(new Set((await since(from)).map((r) => r.apiKey))).toEqual(new Set([KEY_A3]));

    const rev2 = s.agent.sync.current!.content.manifest.revision;
    const own = await createEntry(s.owner.ctx, { serverId: s.serverId, tenantId: s.tenantB, name: "B key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY_B }, s.kek);
    await s.waitRevision(rev2 + 1);
    from = await quiet();
    const b2 = await s.connect(bToken);
    await b2.callTool({ name: "list_tickets", arguments: {} });
    await b2.close();
    expect(new Set((await since(from)).map((r) => r.apiKey))).toEqual(new Set([KEY_B]));
    // The broker agrees: B resolves B's entry, never A's.
    const got = (await (await broker(s.agent.sync.agentKey!, { serverId: s.serverId, tenantId: s.tenantB })).json()) as { entryId: string };
    expect(got.entryId).toBe(own.id);
    expect(got.entryId).not.toBe(entryA);
    expect(shared.id).not.toBe(entryA);
  });

  it("OAuth client credentials: exchanged at the sandbox AS's token endpoint, cached, sent as Bearer", async () => {
    const tenantC = s.extraTenantIds[0]!;
    const reg = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_basic" });
    const rev = s.agent.sync.current!.content.manifest.revision;
    const exchangesBefore = tokenRequests;
    const agentExchangesBefore = s.agent.credentials.stats.tokenExchanges;
    await createEntry(
      s.owner.ctx,
      {
        serverId: s.serverId,
        tenantId: tenantC,
        name: "C oauth",
        kind: "oauth_client_credentials",
        secret: { clientSecret: reg.client_secret! },
        oauth: { tokenUrl: `${as.issuer}/token`, clientId: reg.client_id, scope: "tickets:read", audience: s.sandbox.url, authMethod: "client_secret_basic" },
      },
      s.kek,
    );
    await s.waitRevision(rev + 1);
    await s.setApiKeys([]); // this upstream checks no API key for C: it receives the AS's token
    const from = await quiet();
    const cToken = await s.token("tickets:read", { tenant: tenantC, sub: "carol" });
    const c: Client = await s.connect(cToken);
    await c.callTool({ name: "list_tickets", arguments: {} });
    await c.callTool({ name: "get_ticket", arguments: { id: "T-101" } });
    await c.close();
    const seen = await since(from);
    const auths = new Set(seen.map((r) => r.authorization));
    expect(auths.size).toBe(1);
    const header = [...auths][0]!;
    expect(header).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    expect(header).not.toContain(cToken);
    const claims = JSON.parse(Buffer.from(header.slice(7).split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ iss: as.issuer, client_id: reg.client_id, aud: s.sandbox.url, scope: "tickets:read" });
    // One exchange (prefetched when the bundle arrived) for every call: cached until 60 s before it expires.
    expect(tokenRequests - exchangesBefore).toBe(1);
    expect(s.agent.credentials.stats.tokenExchanges - agentExchangesBefore).toBe(1);
    await s.setApiKeys([KEY_A3, KEY_SHARED, KEY_B]);
  });

  it("fails closed: a credential the broker cannot resolve is never replaced by an unauthenticated call (502)", async () => {
    const tenantC = s.extraTenantIds[0]!;
    // The AS stops answering: C's cached token is dropped, the exchange fails.
    s.agent.credentials.clear();
    await as.stop();
    const from = (await s.upstreamLog()).length;
    const cToken = await s.token("tickets:read", { tenant: tenantC, sub: "carol" });
    const sent = Date.now();
    const res = await s.rpc(
      { jsonrpc: "2.0", id: 7, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } },
      { authorization: `Bearer ${cToken}` },
    );
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ jsonrpc: "2.0", id: 7, error: { code: -32603, message: "Upstream credential unavailable" } });
    expect((await since(from)).filter((r) => r.at >= sent)).toEqual([]);
    expect(await (await fetch(`${s.agent.url}/metrics`)).text()).toMatch(/mandate_credential_failures_total [1-9]/);
  });
});
