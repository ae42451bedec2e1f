/**
 * The agent's credential broker client (agent/credentials.ts) against a small
 * real HTTP broker: entry choice, caching by bundle version and TTL,
 * single-flight, fail-closed errors that carry no secret, and injection.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { BundleContent, BundleCredential } from "@/lib/enforcement/bundle";
import { CredentialBroker, CredentialUnavailable, credentialFor, inject, type BrokeredCredential } from "@/agent/credentials";
import { Metrics } from "@/agent/metrics";

let server: Server;
let url: string;
let requests: { body: { serverId: string; tenantId: string }; auth: string | undefined }[] = [];
/** What the broker answers next, by tenant. */
let answers: Record<string, { status: number; body: unknown; delayMs?: number }> = {};

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", () => {
      const body = JSON.parse(raw) as { serverId: string; tenantId: string };
      requests.push({ body, auth: req.headers.authorization });
      const a = answers[body.tenantId] ?? { status: 404, body: { error: { code: "not_found", message: "none" } } };
      setTimeout(() => res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body)), a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(() => {
  requests = [];
  answers = {};
});

const cred = (over: Partial<BundleCredential>): BundleCredential => ({
  entryId: "vlt_a",
  serverId: "srv_1",
  tenantId: "ten_a",
  kind: "api_key",
  placement: { in: "header", name: "X-Api-Key" },
  version: 1,
  ...over,
});
const content = (credentials: BundleCredential[]) => ({ credentials, servers: [{ id: "srv_1", tenantId: "ten_a", tenantIds: ["ten_a", "ten_b"] }] }) as unknown as BundleContent;
const brokered = (over: Partial<BrokeredCredential>): BrokeredCredential => ({
  entryId: "vlt_a",
  kind: "api_key",
  placement: { in: "header", name: "X-Api-Key" },
  version: 1,
  secret: "key-a-1",
  ttlSeconds: 300,
  ...over,
});

function broker(logs: string[] = [], now?: () => number) {
  const metrics = new Metrics();
  return { metrics, b: new CredentialBroker({ controlPlaneUrl: url, agentKey: () => "mda_test.key", metrics, log: (m) => logs.push(m), now }) };
}

describe("agent credential broker", () => {
  it("the tenant's entry wins over the shared one; no entry → open upstream (null)", async () => {
    const shared = cred({ entryId: "vlt_s", tenantId: null });
    const own = cred({ entryId: "vlt_a" });
    const c = content([shared, own]);
    expect(credentialFor(c, "srv_1", "ten_a")?.entryId).toBe("vlt_a");
    expect(credentialFor(c, "srv_1", "ten_b")?.entryId).toBe("vlt_s");
    expect(credentialFor(content([own]), "srv_1", "ten_b")).toBeNull();
    const { b } = broker();
    expect(await b.resolve(content([own]), "srv_1", "ten_b")).toBeNull();
    expect(requests).toHaveLength(0);
  });

  it("caches by entry and version: a new version in the bundle refetches, concurrent calls share one fetch", async () => {
    answers.ten_a = { status: 200, body: brokered({}), delayMs: 50 };
    const { b, metrics } = broker();
    const c1 = content([cred({})]);
    const all = await Promise.all(Array.from({ length: 20 }, () => b.resolve(c1, "srv_1", "ten_a")));
    expect(requests).toHaveLength(1);
    expect(requests[0]!.auth).toBe("Bearer mda_test.key");
    expect(requests[0]!.body).toEqual({ serverId: "srv_1", tenantId: "ten_a" });
    expect(new Set(all.map((i) => i!.value))).toEqual(new Set(["key-a-1"]));
    expect(await b.resolve(c1, "srv_1", "ten_a")).toMatchObject({ value: "key-a-1", version: 1 });
    expect(requests).toHaveLength(1);
    expect(metrics.credentials.get("hit")).toBe(1);

    answers.ten_a = { status: 200, body: brokered({ version: 2, secret: "key-a-2" }) };
    const c2 = content([cred({ version: 2 })]);
    expect(await b.resolve(c2, "srv_1", "ten_a")).toMatchObject({ value: "key-a-2", version: 2, name: "X-Api-Key", in: "header" });
    expect(requests).toHaveLength(2);
  });

  it("a cached resolution costs no request (figure: cached resolutions per second)", async () => {
    answers.ten_a = { status: 200, body: brokered({}) };
    const { b } = broker();
    const c = content([cred({})]);
    await b.resolve(c, "srv_1", "ten_a");
    const n = 50_000;
    const started = performance.now();
    for (let i = 0; i < n; i++) await b.resolve(c, "srv_1", "ten_a");
    const perSecond = Math.round(n / ((performance.now() - started) / 1000));
    console.log(`[vault] agent-side cached credential resolutions: ${perSecond.toLocaleString("en")} per second (${n} calls, 1 broker request)`);
    expect(requests).toHaveLength(1);
    expect(b.stats.hits).toBe(n);
  });

  it("honours the TTL", async () => {
    let now = 1_000_000;
    answers.ten_a = { status: 200, body: brokered({ ttlSeconds: 10 }) };
    const { b } = broker([], () => now);
    const c = content([cred({})]);
    await b.resolve(c, "srv_1", "ten_a");
    now += 9_000;
    await b.resolve(c, "srv_1", "ten_a");
    expect(requests).toHaveLength(1);
    now += 2_000;
    await b.resolve(c, "srv_1", "ten_a");
    expect(requests).toHaveLength(2);
  });

  it("prefetches the credentials of a new bundle (a shared entry for a tenant without its own)", async () => {
    answers.ten_a = { status: 200, body: brokered({}) };
    answers.ten_b = { status: 200, body: brokered({ entryId: "vlt_s", secret: "shared-1" }) };
    const { b } = broker();
    b.prefetch(content([cred({}), cred({ entryId: "vlt_s", tenantId: null })]));
    await new Promise((r) => setTimeout(r, 100));
    expect(requests.map((r) => r.body.tenantId).sort()).toEqual(["ten_a", "ten_b"]);
    expect(await b.resolve(content([cred({}), cred({ entryId: "vlt_s", tenantId: null })]), "srv_1", "ten_b")).toMatchObject({ value: "shared-1" });
    expect(requests).toHaveLength(2);
  });

  it("fails closed with CredentialUnavailable when the broker refuses or is down; no secret in the message or logs", async () => {
    answers.ten_a = { status: 403, body: { error: { code: "forbidden", message: "This agent's fleet does not serve this server" } } };
    const logs: string[] = [];
    let now = 1_000_000;
    const { b, metrics } = broker(logs, () => now);
    const err = await b.resolve(content([cred({})]), "srv_1", "ten_a").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialUnavailable);
    expect((err as Error).message).toBe("credential vlt_a unavailable: the broker answered 403 (forbidden)");
    expect(metrics.credentials.get("error")).toBe(1);
    // For a second the failure is answered from memory: the broker is not asked again at every call.
    await expect(b.resolve(content([cred({})]), "srv_1", "ten_a")).rejects.toBe(err);
    expect(requests).toHaveLength(1);
    now += 1_001;

    answers.ten_a = { status: 200, body: brokered({ secret: "" }) };
    const empty = await b.resolve(content([cred({})]), "srv_1", "ten_a").catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(CredentialUnavailable);
    expect(requests).toHaveLength(2);

    const down = new CredentialBroker({ controlPlaneUrl: "http://127.0.0.1:1", agentKey: () => "mda_x.y", metrics: new Metrics(), log: (m) => logs.push(m) });
    await expect(down.resolve(content([cred({})]), "srv_1", "ten_a")).rejects.toBeInstanceOf(CredentialUnavailable);
    expect(logs.join("\n")).not.toMatch(/key-a|mda_/);
  });

  it("origin binding: a credential bound to another origin than the upstream's, or suspended, fails closed without asking the broker", async () => {
    answers.ten_a = { status: 200, body: brokered({}) };
    const withUpstream = (credentials: BundleCredential[], upstreamUrl: string) =>
      ({ credentials, servers: [{ id: "srv_1", tenantId: "ten_a", tenantIds: ["ten_a"], upstreamUrl }] }) as unknown as BundleContent;
    const { b } = broker();
    // A rolled-back compiled section may point elsewhere than the fresh live section: the agent compares itself.
    await expect(b.resolve(withUpstream([cred({ origin: "https://old.example" })], "https://new.example/mcp"), "srv_1", "ten_a")).rejects.toThrow(/bound to https:\/\/old.example/);
    await expect(
      b.resolve(withUpstream([cred({ origin: "https://new.example", suspended: { from: "https://old.example", to: "https://new.example" } })], "https://new.example/mcp"), "srv_1", "ten_a"),
    ).rejects.toBeInstanceOf(CredentialUnavailable);
    // A suspended own entry never falls back to a shared one.
    await expect(
      b.resolve(withUpstream([cred({ origin: "https://old.example" }), cred({ entryId: "vlt_shared", tenantId: null, origin: "https://new.example" })], "https://new.example/mcp"), "srv_1", "ten_a"),
    ).rejects.toBeInstanceOf(CredentialUnavailable);
    expect(requests).toHaveLength(0);
    expect((await b.resolve(withUpstream([cred({ origin: "https://new.example" })], "https://new.example/mcp"), "srv_1", "ten_a"))?.value).toBe("key-a-1");
  });

  it("renders each kind and injects into a header or the query", async () => {
    answers.ten_a = { status: 200, body: brokered({ kind: "basic", placement: { in: "header", name: "authorization" }, secret: { username: "u", password: "p:w" } }) };
    const { b } = broker();
    const basic = await b.resolve(content([cred({ kind: "basic" })]), "srv_1", "ten_a");
    expect(basic!.value).toBe(`Basic ${Buffer.from("u:p:w").toString("base64")}`);
    const headers: Record<string, string> = {};
    expect(inject("http://up/mcp", headers, basic)).toBe("http://up/mcp");
    expect(headers).toEqual({ authorization: basic!.value });

    answers.ten_b = { status: 200, body: brokered({ entryId: "vlt_b", kind: "bearer", placement: { in: "header", name: "authorization" }, secret: "tok" }) };
    const bearer = await b.resolve(content([cred({ entryId: "vlt_b", tenantId: "ten_b", kind: "bearer" })]), "srv_1", "ten_b");
    expect(bearer!.value).toBe("Bearer tok");

    const q = { entryId: "vlt_q", version: 1, in: "query" as const, name: "api_key", value: "k&1" };
    const h: Record<string, string> = {};
    expect(inject("http://up/mcp?x=1", h, q)).toBe("http://up/mcp?x=1&api_key=k%261");
    expect(h).toEqual({});
  });
});
