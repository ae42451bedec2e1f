import { describe, expect, it } from "vitest";
import { canonicalResourceUri, checkHttpUrl, protectedResourceMetadataUrl, resourcePath } from "@/lib/enforcement/resource-uri";

describe("canonicalResourceUri: accepted and normalized", () => {
  it.each([
    ["HTTPS://MCP.Example.com:443/mcp/", "https://mcp.example.com/mcp"],
    ["https://mcp.example.com/mcp", "https://mcp.example.com/mcp"],
    ["https://mcp.example.com/mcp///", "https://mcp.example.com/mcp"],
    ["  https://mcp.example.com/mcp  ", "https://mcp.example.com/mcp"],
    ["https://mcp.example.com:8443/a/B", "https://mcp.example.com:8443/a/B"],
    ["https://mcp.example.com/", "https://mcp.example.com"],
    ["https://mcp.example.com", "https://mcp.example.com"],
    ["http://localhost:3000/mcp", "http://localhost:3000/mcp"],
    ["HTTP://LOCALHOST:3000/mcp/", "http://localhost:3000/mcp"],
    ["http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp"],
    ["http://[::1]:3000/mcp", "http://[::1]:3000/mcp"],
    ["http://localhost:80/mcp", "http://localhost/mcp"],
  ])("%s → %s", (input, expected) => {
    expect(canonicalResourceUri(input)).toEqual({ ok: true, uri: expected });
  });

  it("is idempotent: a canonical URI canonicalizes to itself", () => {
    const once = canonicalResourceUri("HTTPS://MCP.Example.com:443/mcp/");
    if (!once.ok) throw new Error(once.error);
    expect(canonicalResourceUri(once.uri)).toEqual(once);
  });
});

describe("canonicalResourceUri: rejected", () => {
  it.each([
    ["fragment", "https://mcp.example.com/mcp#tools", /fragment/],
    ["empty fragment", "https://mcp.example.com/mcp#", /fragment/],
    ["query", "https://mcp.example.com/mcp?tenant=a", /query/],
    ["empty query", "https://mcp.example.com/mcp?", /query/],
    ["relative path", "/mcp", /absolute/],
    ["scheme-relative", "//mcp.example.com/mcp", /absolute/],
    ["host without scheme", "mcp.example.com/mcp", /absolute/],
    ["ftp scheme", "ftp://mcp.example.com/mcp", /https/],
    ["ws scheme", "wss://mcp.example.com/mcp", /https/],
    ["http on a public host", "http://mcp.example.com/mcp", /https/],
    ["http on a look-alike of localhost", "http://localhost.evil.example/mcp", /https/],
    ["http on a private address", "http://10.0.0.5/mcp", /https/],
    ["user info", "https://user@mcp.example.com/mcp", /user info/],
    ["user and password", "https://user:secret@mcp.example.com/mcp", /user info/],
    ["space in path", "https://mcp.example.com/m cp", /spaces/],
    ["tab", "https://mcp.example.com/\tmcp", /spaces/],
    ["empty", "", /required/],
    ["blank", "   ", /required/],
    ["too long", `https://mcp.example.com/${"a".repeat(2100)}`, /2048/],
  ])("%s: %j", (_label, input, message) => {
    const r = canonicalResourceUri(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});

describe("checkHttpUrl (upstream and issuer URLs)", () => {
  it("allows http upstreams but never credentials or fragments", () => {
    expect(checkHttpUrl("http://upstream.internal:8080/mcp")).toEqual({ ok: true, uri: "http://upstream.internal:8080/mcp" });
    expect(checkHttpUrl("https://u:p@upstream.example/mcp").ok).toBe(false);
    expect(checkHttpUrl("https://upstream.example/mcp#x").ok).toBe(false);
    expect(checkHttpUrl("file:///etc/passwd").ok).toBe(false);
  });
  it("with httpsOnly, refuses plain http except on loopback", () => {
    expect(checkHttpUrl("http://issuer.example", { httpsOnly: true }).ok).toBe(false);
    expect(checkHttpUrl("https://issuer.example", { httpsOnly: true }).ok).toBe(true);
    expect(checkHttpUrl("http://localhost:9000", { httpsOnly: true }).ok).toBe(true);
  });
});

describe("protectedResourceMetadataUrl (RFC 9728 §3.1 path insertion)", () => {
  it.each([
    ["https://a.example/mcp", "https://a.example/.well-known/oauth-protected-resource/mcp"],
    ["https://a.example/tenant/x/mcp", "https://a.example/.well-known/oauth-protected-resource/tenant/x/mcp"],
    ["https://a.example:8443/mcp", "https://a.example:8443/.well-known/oauth-protected-resource/mcp"],
    ["https://a.example", "https://a.example/.well-known/oauth-protected-resource"],
    ["http://localhost:3000/mcp", "http://localhost:3000/.well-known/oauth-protected-resource/mcp"],
  ])("%s → %s", (resource, expected) => {
    expect(protectedResourceMetadataUrl(resource)).toBe(expected);
  });

  it("resourcePath is the path, or / for the root", () => {
    expect(resourcePath("https://a.example/mcp")).toBe("/mcp");
    expect(resourcePath("https://a.example")).toBe("/");
  });
});
