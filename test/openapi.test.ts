import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { agentOperations, openApiDocument, operations } from "@/lib/http/openapi";

const adminDir = path.join(process.cwd(), "app", "api", "v1", "admin");
const agentDir = path.join(process.cwd(), "app", "api", "v1", "agent");

function routeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return routeFiles(p);
    return e.name === "route.ts" ? [p] : [];
  });
}

/** "METHOD /api/v1/admin/…/{param}" for every handler exported by the route files under `dir`. */
function routesOnDisk(dir = adminDir): Set<string> {
  const out = new Set<string>();
  for (const file of routeFiles(dir)) {
    const rel = path.relative(path.join(process.cwd(), "app"), path.dirname(file)).split(path.sep);
    const apiPath = "/" + rel.map((seg) => seg.replace(/^\[(\w+)\]$/, "{$1}")).join("/");
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/export\s+(?:const|async\s+function|function)\s+(GET|POST|PUT|PATCH|DELETE)\b/g)) out.add(`${m[1]} ${apiPath}`);
  }
  return out;
}

describe("OpenAPI document", () => {
  it("finds the route files (guards the walk itself)", () => {
    const routes = routesOnDisk();
    expect(routes.size).toBeGreaterThan(20);
    expect(routes).toContain("GET /api/v1/admin/servers/{serverId}");
    expect(routes).toContain("POST /api/v1/admin/tools/{toolId}/approve");
  });

  it("lists exactly the operations the admin route files export", () => {
    const documented = new Set(operations.map((o) => `${o.method.toUpperCase()} ${o.path}`));
    expect(documented.size).toBe(operations.length);
    const routes = routesOnDisk();
    const missingFromDoc = [...routes].filter((r) => !documented.has(r)).sort();
    const missingRoute = [...documented].filter((r) => !routes.has(r)).sort();
    expect({ missingFromDoc, missingRoute }).toEqual({ missingFromDoc: [], missingRoute: [] });
  });

  it("lists exactly the operations the agent route files export", () => {
    const documented = new Set(agentOperations.map((o) => `${o.method.toUpperCase()} ${o.path}`));
    expect(documented.size).toBe(agentOperations.length);
    const routes = routesOnDisk(agentDir);
    expect(routes).toContain("GET /api/v1/agent/bundle");
    const missingFromDoc = [...routes].filter((r) => !documented.has(r)).sort();
    const missingRoute = [...documented].filter((r) => !routes.has(r)).sort();
    expect({ missingFromDoc, missingRoute }).toEqual({ missingFromDoc: [], missingRoute: [] });
    expect(agentOperations.every((o) => o.tag === "agent")).toBe(true);
    expect(operations.filter((o) => o.path.startsWith("/api/v1/admin/fleets") || o.path.startsWith("/api/v1/admin/agents")).every((o) => o.tag === "fleets" || o.tag === "bundles")).toBe(true);
  });

  it("describes the agent bearer scheme and the long-poll answers", () => {
    const doc = openApiDocument("http://x");
    expect(doc.components.securitySchemes.agentKey).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.info.description).toContain('WWW-Authenticate: Bearer realm="mandate-agent"');
    type Op = { security?: unknown[]; responses: Record<string, unknown>; parameters: { name: string; in: string }[] };
    const bundle = (doc.paths["/api/v1/agent/bundle"] as Record<string, Op>).get!;
    expect(bundle.security).toEqual([{ agentKey: [] }]);
    expect(Object.keys(bundle.responses)).toEqual(expect.arrayContaining(["200", "304", "401", "404"]));
    expect(bundle.parameters.map((p) => p.name)).toEqual(expect.arrayContaining(["wait", "after", "If-None-Match"]));
    const enroll = (doc.paths["/api/v1/agent/enroll"] as Record<string, Op>).post!;
    expect(enroll.security).toEqual([]);
    expect(Object.keys(enroll.responses)).toEqual(expect.arrayContaining(["201", "401", "422"]));
  });

  it("builds a document where every operation has responses and path parameters", () => {
    const doc = openApiDocument("http://x");
    expect(doc.openapi).toBe("3.0.3");
    expect(doc.servers).toEqual([{ url: "http://x" }]);
    expect(() => JSON.stringify(doc)).not.toThrow();
    let n = 0;
    for (const [p, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods as Record<string, { responses?: Record<string, unknown>; parameters?: { name: string; in: string }[] }>)) {
        n++;
        expect(Object.keys(op.responses ?? {}).length, `${method} ${p}`).toBeGreaterThan(1);
        expect(
          Object.keys(op.responses!).some((c) => /^2\d\d$/.test(c)),
          `${method} ${p}`,
        ).toBe(true);
        const inPath = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        expect(
          op.parameters!.filter((x) => x.in === "path").map((x) => x.name),
          `${method} ${p}`,
        ).toEqual(inPath);
      }
    }
    expect(n).toBe(operations.length + agentOperations.length);
  });

  it("describes the server body with the same schema the route parses", () => {
    const doc = openApiDocument("http://x");
    const post = (
      doc.paths["/api/v1/admin/servers"] as Record<
        string,
        { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown>; required?: string[] } }> }; responses: Record<string, unknown> }
      >
    ).post!;
    const schema = post.requestBody!.content["application/json"]!.schema;
    expect(schema.properties).toHaveProperty("resourceUri");
    expect(schema.properties).toHaveProperty("issuers");
    expect(schema.required).toEqual(expect.arrayContaining(["tenantId", "name", "resourceUri", "upstreamUrl"]));
    expect(post.responses).toHaveProperty("201");
    expect(post.responses).toHaveProperty("422");
    // The PATCH body has no required fields: it changes only what it names.
    const patch = (
      doc.paths["/api/v1/admin/servers/{serverId}"] as Record<string, { requestBody?: { content: Record<string, { schema: { required?: string[]; properties?: Record<string, unknown> } }> } }>
    ).patch!;
    const patchSchema = patch.requestBody!.content["application/json"]!.schema;
    expect(patchSchema.required ?? []).toEqual([]);
    expect(patchSchema.properties).toHaveProperty("resourceUri");
    expect(patchSchema.properties).not.toHaveProperty("tenantId");
  });
});
