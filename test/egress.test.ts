import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DENY_ALL_PRIVATE, EgressError, egressFetch, parseEgressAllow, readText, refusedReason } from "@/lib/net/egress";
import { redactUrl, redactUrlsIn } from "@/lib/enforcement/redact";

const LOOPBACK = parseEgressAllow("loopback").policy;

describe("egress address policy", () => {
  it.each([
    ["10.1.2.3", "private"],
    ["172.31.255.1", "private"],
    ["192.168.0.10", "private"],
    ["100.64.0.1", "shared (CGNAT)"],
    ["127.0.0.1", "loopback"],
    ["127.8.9.10", "loopback"],
    ["169.254.10.1", "link-local"],
    ["169.254.169.254", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["fe80::1", "link-local"],
    ["fc00::1", "unique-local"],
    ["fd12:3456::1", "unique-local"],
    ["ff02::1", "multicast"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["64:ff9b::a9fe:a9fe", "metadata"],
    ["not-an-ip", "not an IP address"],
  ])("refuses %s (%s) by default", (ip, reason) => {
    expect(refusedReason(ip, DENY_ALL_PRIVATE)).toBe(reason);
  });

  it.each(["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])("allows the public address %s", (ip) => {
    expect(refusedReason(ip, DENY_ALL_PRIVATE)).toBeNull();
  });

  it("allows only what the operator listed; a metadata address needs its own /32", () => {
    expect(refusedReason("127.0.0.1", LOOPBACK)).toBeNull();
    expect(refusedReason("::1", LOOPBACK)).toBeNull();
    expect(refusedReason("10.0.0.1", LOOPBACK)).toBe("private");
    expect(refusedReason("169.254.169.254", LOOPBACK)).toBe("metadata");
    const wide = parseEgressAllow("10.0.0.0/8, 169.254.0.0/16").policy;
    expect(refusedReason("10.200.0.1", wide)).toBeNull();
    expect(refusedReason("192.168.0.1", wide)).toBe("private");
    expect(refusedReason("169.254.169.254", wide)).toBe("metadata");
    expect(refusedReason("169.254.169.254", parseEgressAllow("169.254.169.254/32").policy)).toBeNull();
    expect(refusedReason("fd00:1::1", parseEgressAllow("private").policy)).toBeNull();
  });

  it("lists every malformed allow entry", () => {
    expect(parseEgressAllow("loopback, 10.0.0.0/33, everything, 1.2.3.4/8/1").problems).toHaveLength(3);
  });
});

describe("egressFetch against a real local peer", () => {
  let server: Server;
  let port = 0;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? "");
      if (req.url === "/redirect") return void res.writeHead(302, { location: `http://127.0.0.1:${port}/target` }).end();
      if (req.url === "/big") return void res.end("x".repeat(200_000));
      if (req.url === "/slow") return; // never answers
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function refused(url: string) {
    const before = seen.length;
    const err = await egressFetch(url, {}, { policy: DENY_ALL_PRIVATE }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EgressError);
    expect((err as EgressError).code).toBe("refused_address");
    expect(seen.length).toBe(before); // the peer never saw a request
    return err as EgressError;
  }

  it("refuses a loopback literal, a name that resolves to loopback and an IPv4-mapped literal, before any request", async () => {
    expect((await refused(`http://127.0.0.1:${port}/`)).message).toMatch(/loopback/);
    expect((await refused(`http://localhost:${port}/`)).message).toMatch(/localhost resolves to a loopback address/);
    await refused(`http://[::ffff:127.0.0.1]:${port}/`);
    await refused(`http://[::1]:${port}/`);
    await refused("http://169.254.169.254/latest/meta-data/");
  });

  it("reaches the peer when the operator allowed loopback", async () => {
    const res = await egressFetch(`http://localhost:${port}/ok`, {}, { policy: LOOPBACK });
    expect(res.status).toBe(200);
    expect(await readText(res)).toBe('{"ok":true}');
  });

  it("follows no redirect", async () => {
    const err = (await egressFetch(`http://127.0.0.1:${port}/redirect`, {}, { policy: LOOPBACK }).catch((e: unknown) => e)) as EgressError;
    expect(err.code).toBe("redirect");
    expect(seen).not.toContain("/target");
  });

  it("caps the body while it streams and bounds the time", async () => {
    const res = await egressFetch(`http://127.0.0.1:${port}/big`, {}, { policy: LOOPBACK, maxBytes: 10_000 });
    const err = (await readText(res).catch((e: unknown) => e)) as EgressError;
    expect(err.code).toBe("too_large");
    const slow = (await egressFetch(`http://127.0.0.1:${port}/slow`, {}, { policy: LOOPBACK, timeoutMs: 300 }).catch((e: unknown) => e)) as EgressError;
    expect(slow.code).toBe("timeout");
  });

  it("refuses plain http to a non-loopback host when https is required", () => {
    return expect(egressFetch("http://issuer.example.com/jwks", {}, { policy: DENY_ALL_PRIVATE, requireHttps: true })).rejects.toMatchObject({ code: "bad_url" });
  });
});

describe("redactUrl", () => {
  it("drops query values, userinfo and fragments, keeps names and path", () => {
    expect(redactUrl("https://user:pw@api.example.com:8443/mcp?api_key=sk-live-123&x=1#frag")).toBe("https://api.example.com:8443/mcp?api_key=REDACTED&x=REDACTED");
    expect(redactUrl("not a url sk-live-123")).toBe("<invalid URL>");
    expect(redactUrlsIn("failed: GET http://h.example/p?token=abc (x)")).toBe("failed: GET http://h.example/p?token=REDACTED (x)");
  });
});
