import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DbHandle } from "@/db/client";
import { signInCounters } from "@/db/schema";
import { clientAddress, normalizeAddress, parseTrustedProxies, PEER_ADDRESS_HEADER } from "@/lib/auth/client-address";
import { installPeerAddressStamp } from "@/lib/auth/peer-stamp";
import { signInWithPassword, SignInThrottled, type SignInSettings } from "@/lib/auth/sign-in";
import { envSchema } from "@/lib/env";
import { createTestDb, makeUser, uniq, type TestDb } from "./db";

let t: TestDb;
beforeAll(async () => {
  t = await createTestDb();
});
afterAll(async () => {
  await t?.close();
});

const settings = (over: Partial<SignInSettings> = {}): SignInSettings => ({ maxFailures: 3, windowSeconds: 900, trustedProxies: null, ...over });
const randomIp = () => `198.51.100.${Math.floor(Math.random() * 250) + 1}`;
const headersFrom = (peer: string, xff?: string) => ({ [PEER_ADDRESS_HEADER]: peer, ...(xff ? { "x-forwarded-for": xff } : {}) });

/** Signs in; "throttled" when refused before the password was checked. */
async function attempt(db: TestDb["db"], email: string, password: string, headers: Record<string, string>, s = settings()) {
  try {
    return (await signInWithPassword(db, { email, password }, headers, s)) ? "ok" : "wrong";
  } catch (err) {
    if (err instanceof SignInThrottled) return "throttled";
    throw err;
  }
}

describe("client address", () => {
  it("is the socket peer; X-Forwarded-For from an untrusted peer is ignored", () => {
    expect(clientAddress(headersFrom("203.0.113.9", "1.2.3.4"), null)).toBe("203.0.113.9");
    const { list } = parseTrustedProxies("10.0.0.0/8");
    expect(clientAddress(headersFrom("203.0.113.9", "1.2.3.4"), list)).toBe("203.0.113.9");
    expect(clientAddress(headersFrom("::ffff:203.0.113.9"), null)).toBe("203.0.113.9");
    // Without the server's stamp there is no address to trust: one shared bucket.
    expect(clientAddress({ "x-forwarded-for": "1.2.3.4" }, null)).toBe("unknown");
  });

  it("behind trusted proxies, is the right-most entry that is not a trusted proxy", () => {
    const { list, problems } = parseTrustedProxies("10.0.0.0/8, 192.168.1.7, fd00::/8");
    expect(problems).toEqual([]);
    expect(clientAddress(headersFrom("10.1.2.3", "203.0.113.5"), list)).toBe("203.0.113.5");
    // The client prepends whatever it likes; the proxy appends what it saw.
    expect(clientAddress(headersFrom("10.1.2.3", "6.6.6.6, 7.7.7.7, 203.0.113.5"), list)).toBe("203.0.113.5");
    expect(clientAddress(headersFrom("10.1.2.3", "6.6.6.6, 203.0.113.5, 192.168.1.7"), list)).toBe("203.0.113.5");
    expect(clientAddress(headersFrom("fd00::1", "2001:db8::5, fd00::2"), list)).toBe("2001:db8::5");
    // Garbage written past the trusted chain stops the walk at the last trusted hop.
    expect(clientAddress(headersFrom("10.1.2.3", "203.0.113.5, not-an-ip"), list)).toBe("10.1.2.3");
    // A trusted peer with no header: the peer itself.
    expect(clientAddress(headersFrom("10.1.2.3"), list)).toBe("10.1.2.3");
  });

  it("MANDATE_TRUSTED_PROXIES is validated at start, listing every bad entry", () => {
    expect(parseTrustedProxies("10.0.0.0/33, nope, 1.2.3.4/8/1").problems).toHaveLength(3);
    expect(normalizeAddress("[2001:DB8::1]")).toBe("2001:db8::1");
    const bad = envSchema.safeParse({ MANDATE_TRUSTED_PROXIES: "10.0.0.0/8, example.com" });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toContain("MANDATE_TRUSTED_PROXIES");
    expect(envSchema.safeParse({ MANDATE_TRUSTED_PROXIES: "10.0.0.0/8, ::1" }).success).toBe(true);
  });

  it("the server stamps the socket address over any client-sent copy of the header", async () => {
    installPeerAddressStamp();
    installPeerAddressStamp();
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers[PEER_ADDRESS_HEADER] as string | undefined);
      res.end(String(req.rawHeaders.filter((h) => h.toLowerCase() === PEER_ADDRESS_HEADER).length));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const res = await fetch(url, { headers: { [PEER_ADDRESS_HEADER]: "6.6.6.6", "x-forwarded-for": "6.6.6.6" } });
      expect(await res.text()).toBe("0");
      expect(seen).toEqual(["127.0.0.1"]);
    } finally {
      server.close();
    }
  });
});

describe("sign-in throttling", () => {
  it("rotating X-Forwarded-For does not reset the per-account limit (issue 10.6)", async () => {
    const u = await makeUser(t.db, { password: "the-right-password" });
    const peer = "203.0.113.20";
    for (let i = 0; i < 3; i++) expect(await attempt(t.db, u.user.email, "wrong-password-x", headersFrom(peer, randomIp()))).toBe("wrong");
    // Even the right password is refused now: the guesser learns nothing more in this window.
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom(peer, randomIp()))).toBe("throttled");
  });

  it("limits an account regardless of the address its guesses come from", async () => {
    const u = await makeUser(t.db, { password: "the-right-password" });
    for (let i = 0; i < 3; i++) expect(await attempt(t.db, u.user.email, `wrong-${i}-password`, headersFrom(`203.0.113.${30 + i}`))).toBe("wrong");
    expect(await attempt(t.db, u.user.email, "wrong-again-pass", headersFrom("203.0.113.99"))).toBe("throttled");
    // Another account from a fresh address is not affected.
    const other = await makeUser(t.db, { password: "other-right-password" });
    expect(await attempt(t.db, other.user.email, "other-right-password", headersFrom("203.0.113.100"))).toBe("ok");
  });

  it("limits an address across accounts (4× the per-account limit)", async () => {
    const peer = "203.0.113.50";
    for (let i = 0; i < 12; i++) expect(await attempt(t.db, `${uniq("nobody-")}@test.example`, "whatever-password", headersFrom(peer))).toBe("wrong");
    expect(await attempt(t.db, `${uniq("nobody-")}@test.example`, "whatever-password", headersFrom(peer))).toBe("throttled");
    const u = await makeUser(t.db, { password: "the-right-password" });
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom(peer))).toBe("throttled");
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom("203.0.113.51"))).toBe("ok");
  });

  it("behind a trusted proxy, limits the client the proxy saw, whatever the client prepends", async () => {
    const s = settings({ trustedProxies: parseTrustedProxies("10.0.0.0/8").list });
    const u = await makeUser(t.db, { password: "the-right-password" });
    const peer = "10.0.0.1";
    for (let i = 0; i < 12; i++) {
      expect(await attempt(t.db, `${uniq("x-")}@test.example`, "whatever-password", headersFrom(peer, `${randomIp()}, 203.0.113.60`), s)).toBe("wrong");
    }
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom(peer, `${randomIp()}, 203.0.113.60`), s)).toBe("throttled");
    // Another client behind the same proxy still signs in.
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom(peer, "203.0.113.61"), s)).toBe("ok");
  });

  it("a successful sign-in clears the account's failures", async () => {
    const u = await makeUser(t.db, { password: "the-right-password" });
    for (let i = 0; i < 2; i++) expect(await attempt(t.db, u.user.email, "wrong-password-x", headersFrom("203.0.113.70"))).toBe("wrong");
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom("203.0.113.70"))).toBe("ok");
    for (let i = 0; i < 3; i++) expect(await attempt(t.db, u.user.email, "wrong-password-x", headersFrom("203.0.113.71"))).toBe("wrong");
    expect(await attempt(t.db, u.user.email, "wrong-password-x", headersFrom("203.0.113.71"))).toBe("throttled");
  });

  it("a new window starts once the old one has passed", async () => {
    const u = await makeUser(t.db, { password: "the-right-password" });
    for (let i = 0; i < 3; i++) await attempt(t.db, u.user.email, "wrong-password-x", headersFrom("203.0.113.80"));
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom("203.0.113.80"))).toBe("throttled");
    await t.db.update(signInCounters).set({ windowStartedAt: new Date(Date.now() - 901_000) });
    expect(await attempt(t.db, u.user.email, "the-right-password", headersFrom("203.0.113.80"))).toBe("ok");
  });

  it("concurrent guesses cannot slip past the limit", async () => {
    const u = await makeUser(t.db, { password: "the-right-password" });
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(t.db, u.user.email, `guess-${i}-password`, headersFrom(`203.0.113.${110 + i}`))));
    expect(results.filter((r) => r === "wrong")).toHaveLength(3);
    expect(results.filter((r) => r === "throttled")).toHaveLength(9);
  });

  // Two processes on one database need PostgreSQL (CI runs it there): an embedded PGlite belongs to one process.
  it.skipIf(!process.env.DATABASE_URL)("replicas share the counters: failures on one are counted on the other", async () => {
    const other: DbHandle = await openDatabase({ url: t.url!, max: 2 });
    try {
      const u = await makeUser(t.db, { password: "the-right-password" });
      for (let i = 0; i < 3; i++) expect(await attempt(i % 2 ? other.db : t.db, u.user.email, "wrong-password-x", headersFrom(randomIp()))).toBe("wrong");
      expect(await attempt(other.db, u.user.email, "the-right-password", headersFrom(randomIp()))).toBe("throttled");
    } finally {
      await other.close();
    }
  });
});
