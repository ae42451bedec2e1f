import { describe, expect, it } from "vitest";
import { diffBundles, diffServer } from "@/lib/bundles/diff";
import type { BundleContent, BundleServer } from "@/lib/enforcement/bundle";

/** PostgreSQL jsonb stores object keys sorted by length, then bytes: a published bundle read back has its keys in another order than the draft. */
function asJsonb(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(asJsonb);
  if (v && typeof v === "object") {
    const keys = Object.keys(v).sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(keys.map((k) => [k, asJsonb((v as Record<string, unknown>)[k])]));
  }
  return v;
}

const server: BundleServer = {
  id: "srv_1",
  name: "Files",
  tenantId: "ten_1",
  tenantIds: ["ten_1"],
  resourceUri: "https://mcp.example.com/files",
  upstreamUrl: "https://files.internal/mcp",
  scopes: ["files:read"],
  issuers: [{ issuer: "https://idp.example.com", discovery: true, algorithms: ["RS256"], claims: { tenant: "tid", user: "sub", client: "azp", scopes: "scope" } }],
  trust: [{ tenantId: "ten_1", issuer: "https://idp.example.com", discovery: true, algorithms: ["RS256"] }] as unknown as BundleServer["trust"],
  prm: { resource: "https://mcp.example.com/files", authorization_servers: ["https://idp.example.com"], scopes_supported: ["files:read"], bearer_methods_supported: ["header"] } as BundleServer["prm"],
};

function content(servers: BundleServer[]): BundleContent {
  return { servers, catalogue: [], cedar: { schema: {} as never, policies: {}, entities: [] }, policies: {}, revocations: [], approvedClients: [], masking: [] } as unknown as BundleContent;
}

describe("diffBundles: servers", () => {
  it("reports no change for the same server read back from jsonb (keys in another order)", () => {
    const live = asJsonb(content([server])) as BundleContent;
    const d = diffBundles(live, content([server]));
    expect(d.servers).toEqual({ added: [], removed: [], changed: [] });
  });

  it("reports a real change with the field that differs", () => {
    const live = asJsonb(content([server])) as BundleContent;
    const d = diffBundles(live, content([{ ...server, upstreamUrl: "https://files2.internal/mcp" }]));
    expect(d.servers.changed).toHaveLength(1);
    expect(d.servers.changed[0]!.fields).toEqual([{ field: "upstreamUrl", before: "https://files.internal/mcp", after: "https://files2.internal/mcp" }]);
  });

  it("never lists a changed server without a field: a difference outside the shown fields is shown as 'other'", () => {
    const a = { ...server, issuers: [{ ...server.issuers[0]!, revocationEndpoint: "https://idp.example.com/revoke" }] };
    const d = diffBundles(content([server]), content([a]));
    expect(d.servers.changed).toHaveLength(1);
    expect(d.servers.changed[0]!.fields.length).toBeGreaterThan(0);
  });

  it("diffServer shows prm once, whatever the key order", () => {
    expect(diffServer(asJsonb(server) as BundleServer, server)).toEqual([]);
  });
});

describe("diffServer: order and hidden fields", () => {
  it("ignores the order of admitted tenants", () => {
    expect(diffServer({ ...server, tenantIds: ["a", "b"] }, { ...server, tenantIds: ["b", "a"] })).toEqual([]);
  });

  it("shows a change of a trusted issuer's claim paths under trust", () => {
    const t = (user: string) =>
      [
        {
          tenantId: "ten_1",
          issuer: "https://idp.example.com",
          discovery: true,
          algorithms: ["RS256"],
          claims: { user, client: "azp", scopes: "scope", groups: "groups" },
          tenantMapping: { kind: "fixed" },
        },
      ] as unknown as BundleServer["trust"];
    const f = diffServer({ ...server, trust: t("sub") }, { ...server, trust: t("email") });
    expect(f.map((x) => x.field)).toEqual(["trust"]);
  });
});
