import { expect, test, type APIRequestContext } from "@playwright/test";
import { apiAs, createMember, createServer, createTenant, json, ownerToken, tokenFor } from "../helpers";

// A tenant admin must not see or touch another tenant's objects, even by id;
// an auditor must not change anything. Checked through the API with real tokens.
test.describe("tenant isolation and roles through the API", () => {
  let ownerApi: APIRequestContext;
  let tenantA: { id: string };
  let tenantB: { id: string };
  let serverA: { id: string; name: string };
  let toolA: { id: string };
  let adminB: APIRequestContext;
  let auditorA: APIRequestContext;

  test.beforeAll(async () => {
    ownerApi = await apiAs(ownerToken());
    tenantA = await createTenant(ownerApi);
    tenantB = await createTenant(ownerApi);
    serverA = await createServer(ownerApi, tenantA.id);
    toolA = await json(await ownerApi.post(`/api/v1/admin/servers/${serverA.id}/tools`, { data: { name: "secret_tool", inputSchema: { type: "object" } } }), 201);
    const b = await createMember(ownerApi, tenantB.id, "admin");
    adminB = await apiAs(await tokenFor(b, { name: "b-admin", role: "admin", tenantId: tenantB.id }));
    const a = await createMember(ownerApi, tenantA.id, "auditor");
    auditorA = await apiAs(await tokenFor(a, { name: "a-auditor", role: "auditor", tenantId: tenantA.id }));
  });

  test("the other tenant's ids answer 404 for every verb", async () => {
    const attempts = [
      adminB.get(`/api/v1/admin/tenants/${tenantA.id}`),
      adminB.patch(`/api/v1/admin/tenants/${tenantA.id}`, { data: { name: "hijacked" } }),
      adminB.get(`/api/v1/admin/tenants/${tenantA.id}/members`),
      adminB.post(`/api/v1/admin/tenants/${tenantA.id}/members`, { data: { email: "x@e2e.test", role: "admin" } }),
      adminB.get(`/api/v1/admin/servers/${serverA.id}`),
      adminB.patch(`/api/v1/admin/servers/${serverA.id}`, { data: { name: "hijacked" } }),
      adminB.delete(`/api/v1/admin/servers/${serverA.id}`),
      adminB.get(`/api/v1/admin/servers/${serverA.id}/tools`),
      adminB.post(`/api/v1/admin/servers/${serverA.id}/import`),
      adminB.put(`/api/v1/admin/servers/${serverA.id}/scopes`, { data: { baseVersion: 0, mapping: {} } }),
      adminB.get(`/api/v1/admin/tools/${toolA.id}`),
      adminB.post(`/api/v1/admin/tools/${toolA.id}/block`, { data: { reason: "because" } }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status(), `${res.url()} ${await res.text()}`).toBe(404);
    }
    // Nothing changed.
    const s = await json<{ name: string }>(await ownerApi.get(`/api/v1/admin/servers/${serverA.id}`), 200);
    expect(s.name).toBe(serverA.name);
    const t = await json<{ blocked: boolean }>(await ownerApi.get(`/api/v1/admin/tools/${toolA.id}`), 200);
    expect(t.blocked).toBe(false);
  });

  test("lists and the trail leave out the other tenant", async () => {
    const servers = await json<{ items: { id: string }[] }>(await adminB.get("/api/v1/admin/servers?pageSize=100"), 200);
    expect(servers.items.map((s) => s.id)).not.toContain(serverA.id);
    const tenants = await json<{ items: { id: string }[] }>(await adminB.get("/api/v1/admin/tenants"), 200);
    expect(tenants.items.map((t) => t.id)).toEqual([tenantB.id]);
    const trail = await json<{ items: { tenantId: string | null }[] }>(await adminB.get("/api/v1/admin/trail?limit=200"), 200);
    expect(trail.items.every((e) => e.tenantId === tenantB.id)).toBe(true);
  });

  test("a tenant admin cannot create in or share with another tenant", async () => {
    const res = await adminB.post("/api/v1/admin/servers", {
      data: { tenantId: tenantA.id, name: "sneaky", resourceUri: "https://mcp.e2e.test/sneaky", upstreamUrl: "http://127.0.0.1:1/mcp" },
    });
    expect(res.status()).toBe(422);
    const own = await createServer(adminB, tenantB.id);
    const share = await adminB.patch(`/api/v1/admin/servers/${own.id}`, { data: { tenantIds: [tenantA.id] } });
    expect(share.status()).toBe(422);
    expect((await adminB.post("/api/v1/admin/tenants", { data: { name: "not-mine" } })).status()).toBe(403);
  });

  test("an auditor reads but changes nothing", async () => {
    await json(await auditorA.get(`/api/v1/admin/servers/${serverA.id}`), 200);
    const writes = [
      auditorA.patch(`/api/v1/admin/servers/${serverA.id}`, { data: { description: "changed by auditor" } }),
      auditorA.delete(`/api/v1/admin/servers/${serverA.id}`),
      auditorA.post(`/api/v1/admin/servers/${serverA.id}/tools`, { data: { name: "x_tool", inputSchema: { type: "object" } } }),
      auditorA.post(`/api/v1/admin/tools/${toolA.id}/block`, { data: { reason: "auditor says" } }),
      auditorA.put(`/api/v1/admin/servers/${serverA.id}/scopes`, { data: { baseVersion: 0, mapping: {} } }),
      auditorA.patch(`/api/v1/admin/tenants/${tenantA.id}`, { data: { name: "renamed by auditor" } }),
      auditorA.post(`/api/v1/admin/tenants/${tenantA.id}/members`, { data: { email: "y@e2e.test", role: "admin" } }),
    ];
    for (const res of await Promise.all(writes)) expect(res.status(), res.url()).toBe(403);
    const s = await json<{ description: string }>(await ownerApi.get(`/api/v1/admin/servers/${serverA.id}`), 200);
    expect(s.description).toBe("");
  });
});
