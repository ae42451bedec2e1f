/**
 * The agent's side of brokered per-user OAuth (agent/connections.ts through
 * the CredentialBroker) against a local control-plane peer over real HTTP:
 * per-user caching, the connect answer, cuts and revocations, rotation of the
 * entry, and failing closed on a broken or malformed answer without a token
 * in errors or logs.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialBroker, CredentialUnavailable } from "@/agent/credentials";
import { ConnectionRequired } from "@/agent/connections";
import { Metrics } from "@/agent/metrics";
import type { BundleConnectionCut, BundleContent } from "@/lib/enforcement/bundle";
import type { Principal } from "@/lib/enforcement/token";

let peer: Server;
let base = "";
let asked: { user: string; tenantId: string; serverId: string }[] = [];
let answer: (body: { user: string }) => { status: number; body: unknown } = () => ({ status: 500, body: {} });

beforeAll(async () => {
  peer = createHttpServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      if (req.url !== "/api/v1/agent/connections/token" || req.headers.authorization !== "Bearer mda_t.k") return void res.writeHead(404).end();
      const body = JSON.parse(raw) as { user: string; tenantId: string; serverId: string };
      asked.push(body);
      const a = answer(body);
      res.writeHead(a.status, { "content-type": "application/json" }).end(typeof a.body === "string" ? a.body : JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => peer.listen(0, "127.0.0.1", () => r()));
  base = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => peer.close(() => r())));

const ISS = "https://idp.example/";
const principal = (sub: string): Principal => ({
  issuer: ISS,
  tenantId: "ten_a",
  user: `${ISS}#${sub}`,
  client: "app",
  scopes: [],
  groups: [],
  actors: [],
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 600,
});
const bundle = (o: { version?: number; cuts?: BundleConnectionCut[]; revoked?: string[] } = {}) =>
  ({
    credentials: [{ entryId: "vlt_b", serverId: "srv_1", tenantId: "ten_a", kind: "oauth_user_brokered", placement: { in: "header", name: "authorization" }, version: o.version ?? 1 }],
    servers: [{ id: "srv_1", tenantId: "ten_a", tenantIds: ["ten_a"] }],
    revocations: (o.revoked ?? []).map((u) => ({ tenantId: "ten_a", user: `${ISS}#${u}`, before: new Date(Date.now() + 60_000).toISOString() })),
    connectionCuts: o.cuts ?? [],
  }) as unknown as BundleContent;
const ok = (token: string) => ({ status: 200, body: { status: "ok", connectionId: "con_1", entryId: "vlt_b", accessToken: token, useUntil: new Date(Date.now() + 300_000).toISOString() } });
const newBroker = (logs: string[] = []) => new CredentialBroker({ controlPlaneUrl: base, agentKey: () => "mda_t.k", metrics: new Metrics(), log: (m) => logs.push(m) });
const subject = (sub: string) => ({ token: `client-token-${sub}`, principal: principal(sub) });

describe("brokered per-user tokens at the agent", () => {
  it("each user gets their own token, cached per user; the client's token is never sent to the control plane", async () => {
    asked = [];
    answer = (b) => ok(`up-${b.user.split("#")[1]}`);
    const b = newBroker();
    const c = bundle();
    expect((await b.resolve(c, "srv_1", "ten_a", subject("alice")))!.value).toBe("Bearer up-alice");
    expect((await b.resolve(c, "srv_1", "ten_a", subject("bob")))!.value).toBe("Bearer up-bob");
    expect((await b.resolve(c, "srv_1", "ten_a", subject("alice")))!.value).toBe("Bearer up-alice");
    expect(asked).toEqual([
      { serverId: "srv_1", tenantId: "ten_a", user: `${ISS}#alice` },
      { serverId: "srv_1", tenantId: "ten_a", user: `${ISS}#bob` },
    ]);
    // Without a caller there is no user to act for.
    await expect(b.resolve(c, "srv_1", "ten_a")).rejects.toBeInstanceOf(CredentialUnavailable);
  });

  it("a connect answer is ConnectionRequired with the page, never cached; cuts, revocations and rotation drop held tokens", async () => {
    asked = [];
    answer = (b) =>
      b.user.endsWith("#dave")
        ? { status: 200, body: { status: "connect", requestId: "cnr_1", url: "https://cp.example/connect/cnr_1", expiresAt: new Date().toISOString(), reason: "none" } }
        : ok("up-x");
    const b = newBroker();
    const c = bundle();
    const err = await b.resolve(c, "srv_1", "ten_a", subject("dave")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionRequired);
    expect((err as ConnectionRequired).answer.url).toBe("https://cp.example/connect/cnr_1");
    await b.resolve(c, "srv_1", "ten_a", subject("dave")).catch(() => undefined);
    expect(asked).toHaveLength(2);

    await b.resolve(c, "srv_1", "ten_a", subject("alice"));
    await b.resolve(c, "srv_1", "ten_a", subject("bob"));
    expect(b.brokered.count).toBe(2);
    // A cut of alice's connection drops her token only.
    b.prefetch(bundle({ cuts: [{ tenantId: "ten_a", serverId: "srv_1", user: `${ISS}#alice`, before: new Date().toISOString() }] }));
    expect(b.brokered.count).toBe(1);
    // Fetched under that cut (she connected again): the same cut in a later bundle keeps it.
    const cutBundle = bundle({ cuts: [{ tenantId: "ten_a", serverId: "srv_1", user: `${ISS}#alice`, before: "2026-01-01T00:00:00.000Z" }] });
    b.prefetch(cutBundle);
    await b.resolve(cutBundle, "srv_1", "ten_a", subject("alice"));
    expect(b.brokered.count).toBe(2);
    b.prefetch(cutBundle);
    expect(b.brokered.count).toBe(2);
    // A revoked user, then a rotated entry.
    b.prefetch(bundle({ revoked: ["bob"], cuts: cutBundle.connectionCuts }));
    expect(b.brokered.count).toBe(1);
    b.prefetch(bundle({ version: 2, cuts: cutBundle.connectionCuts }));
    expect(b.brokered.count).toBe(0);
  });

  it("a token whose fetch spans a new bundle (which may cut the connection) serves its call but is not kept", async () => {
    asked = [];
    answer = () => ok("up-slow");
    const b = newBroker();
    // The fetch is on the wire when a bundle cutting alice's connection is installed.
    const pending = b.resolve(bundle(), "srv_1", "ten_a", subject("alice"));
    b.prefetch(bundle({ cuts: [{ tenantId: "ten_a", serverId: "srv_1", user: `${ISS}#alice`, before: new Date().toISOString() }] }));
    expect((await pending)!.value).toBe("Bearer up-slow");
    expect(asked).toHaveLength(1);
    expect(b.brokered.count).toBe(0);
  });

  it("a failing or malformed control plane answer fails closed, with no token in the error or log", async () => {
    const logs: string[] = [];
    const b = newBroker(logs);
    answer = () => ({ status: 502, body: { error: { code: "upstream_error", message: "Refreshing the upstream token failed" } } });
    const e1 = await b.resolve(bundle(), "srv_1", "ten_a", subject("erin")).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(CredentialUnavailable);
    expect((e1 as Error).message).toBe("credential vlt_b unavailable: the control plane answered 502 (upstream_error) for the user's token");
    answer = () => ({ status: 200, body: { status: "ok", accessToken: "SECRET-TOKEN" } });
    const e2 = await b.resolve(bundle(), "srv_1", "ten_a", subject("frank")).catch((e: unknown) => e);
    expect((e2 as Error).message).toBe("credential vlt_b unavailable: the control plane's token answer is malformed");
    expect(`${String(e1)} ${String(e2)} ${logs.join("\n")}`).not.toMatch(/SECRET-TOKEN|client-token/);
  });
});
