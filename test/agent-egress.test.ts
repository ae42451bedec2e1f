/**
 * The agent's own outbound requests go through the one egress guard
 * (lib/net/egress.ts) under the operator's policy (--egress-allow): issuer
 * discovery and JWKS, the upstream pools (checked when the bundle is
 * installed and at each new connection), the control plane (its host is
 * operator-named, so exempt from the address check). Real peers: the sandbox
 * oidc-provider, a real agent, a counting upstream, PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { agentEgress, agentEgressPolicy } from "@/lib/net/agent";
import { egressFetch, EgressError } from "@/lib/net/egress";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import type { TokenValidatorLike } from "@/agent/token";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort } from "./sandbox";
import { startControlPlane, type Listening } from "./agent-proc-harness";
import { clientCredentialsToken } from "./auth-server-helpers";

const kek: Kek = { id: "kek-egress-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const SCOPES = ["tickets:read"];

let t: TestDb;
let owner: MadeUser;
let cp: Listening;
let as: AuthServer;
let upstream: Server;
let upstreamUrl: string;
let hits = 0;
/** Requests of this test's own client (the agent's catalogue check after a bundle install also reaches the upstream, at its own time). */
let callerHits = 0;
let port: number;
let url: string;
let tenantId: string;
let fleetId: string;
let keysEnv: string;
const cleanup: Array<() => Promise<unknown>> = [];

const INIT = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "egress-test", version: "1.0.0" } } });
const call = (token: string) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` }, body: INIT });

async function agentWith(args: string[], opts: { validator?: TokenValidatorLike; logs?: string[] } = {}): Promise<RunningAgent> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-egress-"));
  const enrollment = await createEnrollmentToken(owner.ctx, fleetId);
  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(port), "--data-dir", dataDir, "--wait", "2", ...args], {
    MANDATE_BUNDLE_KEYS: keysEnv,
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  const agent = await startAgent(loaded.config, { log: (m) => opts.logs?.push(m), validator: opts.validator });
  cleanup.push(async () => {
    await agent.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const end = Date.now() + 20_000;
  while ((await fetch(`${agent.url}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error("the agent did not install the bundle");
    await new Promise((r) => setTimeout(r, 50));
  }
  return agent;
}

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  [cp, port] = await Promise.all([startControlPlane(), freePort()]);
  // An upstream that answers initialize and counts every request it receives.
  upstream = createHttpServer((req, res) => {
    hits++;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (Buffer.concat(chunks).toString("utf8").includes('"name":"egress-test"')) callerHits++;
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { protocolVersion: "2025-11-25", capabilities: {}, serverInfo: { name: "counting", version: "1" } } }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", () => r()));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  url = `http://127.0.0.1:${port}/egress`;
  as = await startAuthServer({ resources: { [url]: { scopes: SCOPES } }, clientTenant: tenantId });
  const s = await createServer(owner.ctx, createServerInput.parse({ tenantId, name: uniq("Egress "), resourceUri: url, upstreamUrl, scopes: SCOPES, issuers: [{ issuer: as.issuer }] }));
  fleetId = (await createFleet(owner.ctx, { name: uniq("Egress "), serverIds: [s!.id] }))!.id;
  await activeSigningKey(t.db, kek);
  keysEnv = JSON.stringify({ keys: Object.entries(await publicKeys(t.db)).map(([kid, k]) => ({ ...k, kid })) });
  await publishBundle(owner.ctx, fleetId, { note: "egress" }, kek);
}, 120_000);

afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
  await Promise.all([cp?.close(), as?.stop(), new Promise((r) => upstream?.close(r))]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
});

describe("the agent's outbound requests under its egress policy", () => {
  it("an issuer on a refused address: its keys are never fetched and the token is refused (401), while the control plane (operator-named) is reached", async () => {
    const { token } = await clientCredentialsToken(as, url, SCOPES.join(" "), tenantId);
    const agent = await agentWith(["--egress-allow", "10.0.0.0/8"]);
    // The bundle arrived through the control plane's host (127.0.0.1, exempt as the operator named it).
    expect(agent.sync.current).not.toBeNull();
    const res = await call(token);
    const challenge = res.headers.get("www-authenticate") ?? "";
    await res.body?.cancel();
    // Before: the JWKS came through a raw fetch to 127.0.0.1 and the call passed (200).
    expect(res.status, challenge).toBe(401);
    expect(challenge).toContain('error="invalid_token"');
    expect(hits).toBe(0);
    await agent.stop();
  });

  it("an upstream on a refused address is refused when the bundle is installed: the call answers 502 and the upstream sees nothing", async () => {
    const accept: TokenValidatorLike = {
      validate: async () => ({ ok: true, principal: { issuer: as.issuer, tenantId, user: `${as.issuer}#u1`, client: "c1", scopes: SCOPES, groups: [], actors: [], iat: 0, exp: 4_000_000_000 } }),
    };
    const logs: string[] = [];
    const agent = await agentWith(["--egress-allow", "10.0.0.0/8"], { validator: accept, logs });
    const res = await call("any.token.here");
    const text = await res.text();
    // Before: the undici Pool connected to 127.0.0.1 whatever the policy (200).
    expect(res.status, text).toBe(502);
    expect(hits).toBe(0);
    expect(logs.some((l) => /egress refuses upstream http:\/\/127\.0\.0\.1:\d+: 127\.0\.0\.1:\d+ is a loopback address/.test(l))).toBe(true);
    await agent.stop();
  });

  it("with loopback allowed (the default when the control plane is on loopback) the same issuer and upstream are reached", async () => {
    const { token } = await clientCredentialsToken(as, url, SCOPES.join(" "), tenantId);
    const agent = await agentWith([]);
    const before = callerHits;
    const res = await call(token);
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect(callerHits - before).toBe(1);
    await agent.stop();
  });
});

describe("agent egress policy (lib/net/agent.ts)", () => {
  it("defaults: loopback only when the control plane is on loopback; the control plane's host is exempt; problems are listed", () => {
    expect(agentEgressPolicy(undefined, "http://127.0.0.1:3000").policy).toMatchObject({ loopback: true, cidrs: [], hosts: ["127.0.0.1:3000"] });
    expect(agentEgressPolicy(undefined, "https://mandate.example.com").policy).toMatchObject({ loopback: false, cidrs: [], hosts: ["mandate.example.com:443"] });
    expect(agentEgressPolicy("private", "https://cp.example").policy.cidrs).toContain("10.0.0.0/8");
    expect(agentEgressPolicy("10.0.0.0/33,intranet", "https://cp.example").problems).toHaveLength(2);
    expect(loadConfig(["--control-plane", "https://cp.example", "--agent-key", "k", "--egress-allow", "intranet"], {})).toMatchObject({ ok: false });
  });

  it("an operator-named host may be loopback while others may not; metadata never; redirects refused; a 304 has no body", async () => {
    const srv = createHttpServer((req, res) => {
      if (req.url === "/redirect") res.writeHead(302, { location: "http://169.254.169.254/" }).end();
      else if (req.url === "/same") res.writeHead(304).end();
      else res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const e = agentEgress(agentEgressPolicy("10.0.0.0/8", base).policy);
      expect(await (await e.controlPlane(`${base}/x`)).text()).toBe("ok");
      expect((await e.controlPlane(`${base}/same`)).status).toBe(304);
      await expect(e.controlPlane(`${base}/redirect`)).rejects.toMatchObject({ code: "redirect" });
      // The same host on another port, or under another name, is not exempt.
      await expect(e.fetch(`http://127.0.0.1:${port}/x`)).rejects.toMatchObject({ code: "refused_address" });
      await expect(e.fetch(`${base.replace("127.0.0.1", "localhost")}/x`)).rejects.toBeInstanceOf(EgressError);
      await expect(egressFetch("http://169.254.169.254/latest/meta-data/", {}, { policy: { loopback: true, cidrs: ["0.0.0.0/0"], hosts: ["169.254.169.254:80"] } })).rejects.toMatchObject({
        code: "refused_address",
      });
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});
