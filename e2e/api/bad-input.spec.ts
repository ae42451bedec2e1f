import { expect, test, type APIRequestContext } from "@playwright/test";
import { apiAs, baseURL, createServer, createTenant, json, ownerToken, uniq } from "../helpers";

test.describe("bad input gets a clear 4xx and writes nothing", () => {
  let api: APIRequestContext;
  let tenant: { id: string; name: string };
  const countServers = async () => (await json<{ total: number }>(await api.get(`/api/v1/admin/servers?tenantId=${tenant.id}`), 200)).total;

  test.beforeAll(async () => {
    api = await apiAs(ownerToken());
    tenant = await createTenant(api);
  });

  const malformed: [string, RegExp][] = [
    ["mcp.example.com/tickets", /absolute/],
    ["/relative/path", /absolute/],
    ["https://mcp.example.com/tickets#frag", /fragment/],
    ["https://mcp.example.com/tickets?x=1", /query/],
    ["ftp://mcp.example.com/tickets", /https/],
    ["http://mcp.example.com/tickets", /https/],
    ["https://user:pw@mcp.example.com/tickets", /user info/],
    ["", /required/],
  ];
  for (const [uri, message] of malformed) {
    test(`resource URI ${JSON.stringify(uri)} is refused`, async () => {
      const before = await countServers();
      const res = await api.post("/api/v1/admin/servers", { data: { tenantId: tenant.id, name: uniq("bad"), resourceUri: uri, upstreamUrl: "http://127.0.0.1:9/mcp" } });
      const body = await json<{ error: { code: string; issues: { path: string; message: string }[] } }>(res, 422);
      expect(body.error.code).toBe("validation_failed");
      const issue = body.error.issues.find((i) => i.path === "resourceUri");
      expect(issue?.message).toMatch(message);
      expect(await countServers()).toBe(before);
    });
  }

  test("a resource URI is stored in canonical form", async () => {
    const name = uniq("canon");
    const s = await json<{ resourceUri: string }>(
      await api.post("/api/v1/admin/servers", { data: { tenantId: tenant.id, name, resourceUri: `HTTPS://MCP.E2E.Test:443/${name}/`, upstreamUrl: "http://127.0.0.1:9/mcp" } }),
      201,
    );
    expect(s.resourceUri).toBe(`https://mcp.e2e.test/${name}`);
  });

  test("duplicates answer 409 naming the field", async () => {
    const dupTenant = await json<{ error: { code: string; issues: { path: string }[] } }>(await api.post("/api/v1/admin/tenants", { data: { name: tenant.name } }), 409);
    expect(dupTenant.error.issues[0]?.path).toBe("name");
    const s = await createServer(api, tenant.id);
    const before = await countServers();
    const dupUri = await json<{ error: { issues: { path: string }[] } }>(
      await api.post("/api/v1/admin/servers", { data: { tenantId: tenant.id, name: uniq("other"), resourceUri: s.resourceUri, upstreamUrl: "http://127.0.0.1:9/mcp" } }),
      409,
    );
    expect(dupUri.error.issues[0]?.path).toBe("resourceUri");
    const dupName = await json<{ error: { issues: { path: string }[] } }>(
      await api.post("/api/v1/admin/servers", { data: { tenantId: tenant.id, name: s.name, resourceUri: `https://mcp.e2e.test/${uniq("x")}`, upstreamUrl: "http://127.0.0.1:9/mcp" } }),
      409,
    );
    expect(dupName.error.issues[0]?.path).toBe("name");
    expect(await countServers()).toBe(before);
  });

  test("oversized, malformed and mistyped bodies", async () => {
    const before = await countServers();
    const big = await api.post("/api/v1/admin/servers", {
      data: { tenantId: tenant.id, name: "big", description: "x".repeat(300 * 1024), resourceUri: "https://mcp.e2e.test/big", upstreamUrl: "http://127.0.0.1:9/mcp" },
    });
    expect(big.status()).toBe(413);
    const notJson = await api.post("/api/v1/admin/tenants", { headers: { "content-type": "application/json" }, data: Buffer.from("{not json") });
    expect((await json<{ error: { code: string } }>(notJson, 400)).error.code).toBe("invalid_json");
    const wrongType = await api.post("/api/v1/admin/tenants", { data: { name: 42 } });
    expect(wrongType.status()).toBe(422);
    const badIssuer = await api.post("/api/v1/admin/servers", {
      data: {
        tenantId: tenant.id,
        name: uniq("alg"),
        resourceUri: `https://mcp.e2e.test/${uniq("alg")}`,
        upstreamUrl: "http://127.0.0.1:9/mcp",
        issuers: [{ issuer: "https://as.e2e.test", algorithms: ["none"] }],
      },
    });
    expect(badIssuer.status()).toBe(422);
    expect(await countServers()).toBe(before);
  });

  test("unknown ids answer 404", async () => {
    for (const path of ["/api/v1/admin/servers/srv_00000000000000000000000000000000", "/api/v1/admin/tools/nope", "/api/v1/admin/tenants/ten_nope"]) {
      expect((await api.get(path)).status(), path).toBe(404);
    }
    expect((await api.delete("/api/v1/admin/tokens/tok_nope")).status()).toBe(404);
  });

  test("no credential, a forged token and a cross-site cookie write are refused", async ({ playwright }) => {
    const anon = await playwright.request.newContext({ baseURL });
    const none = await anon.get("/api/v1/admin/servers");
    expect(none.status()).toBe(401);
    expect(none.headers()["www-authenticate"]).toContain("Bearer");
    const forged = await apiAs(ownerToken().replace(/.$/, (c) => (c === "A" ? "B" : "A")));
    expect((await forged.get("/api/v1/admin/servers")).status()).toBe(401);

    // A signed-in browser tricked into posting from another origin.
    const browser = await playwright.request.newContext({ baseURL, storageState: "e2e/.auth/owner.json" });
    const name = uniq("csrf");
    const res = await browser.post("/api/v1/admin/tenants", { data: { name }, headers: { origin: "https://evil.example" } });
    expect(res.status()).toBe(403);
    const list = await json<{ items: { name: string }[] }>(await api.get(`/api/v1/admin/tenants?q=${name}`), 200);
    expect(list.items).toHaveLength(0);
  });

  test("the OpenAPI document describes the admin API", async ({ playwright }) => {
    const anon = await playwright.request.newContext({ baseURL });
    const doc = await json<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(await anon.get("/api/v1/openapi.json"), 200);
    expect(doc.openapi).toBe("3.0.3");
    expect(Object.keys(doc.paths["/api/v1/admin/servers"] ?? {})).toEqual(expect.arrayContaining(["get", "post"]));
  });
});
