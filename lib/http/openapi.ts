import { z } from "zod";
import { changePasswordInput, createUserInput, updateUserInput } from "@/lib/auth/users";
import { createTokenInput } from "@/lib/auth/tokens";
import { addToolInput, approveToolInput, blockToolInput, toolListQuery, updateToolInput } from "@/lib/catalog/service";
import { pageQuery } from "@/lib/pagination";
import { putScopeMappingInput } from "@/lib/scopes/service";
import { createServerInput, updateServerInput } from "@/lib/servers/schemas";
import { addMemberInput, createTenantInput, updateMemberInput, updateTenantInput } from "@/lib/tenants/service";
import { trailQuery } from "@/lib/trail/service";

type Method = "get" | "post" | "put" | "patch" | "delete";

/** One admin API operation. A test checks this list against the route files. */
export interface Operation {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: z.ZodObject;
  created?: boolean;
  noContent?: boolean;
}

const serversQuery = pageQuery.extend({ tenantId: z.string().optional().describe("Only servers this tenant may use") });

export const operations: Operation[] = [
  { method: "get", path: "/api/v1/admin/me", summary: "Who is acting, and the tenants they can reach", tag: "identity" },
  { method: "post", path: "/api/v1/admin/me/password", summary: "Change your own password (ends every session)", tag: "identity", body: changePasswordInput, noContent: true },
  { method: "get", path: "/api/v1/admin/users", summary: "List users (owners and global auditors)", tag: "identity", query: pageQuery },
  { method: "post", path: "/api/v1/admin/users", summary: "Create a user; a generated password is returned once", tag: "identity", body: createUserInput, created: true },
  { method: "patch", path: "/api/v1/admin/users/{userId}", summary: "Rename, change global role, disable", tag: "identity", body: updateUserInput },
  { method: "get", path: "/api/v1/admin/tenants", summary: "Tenants the caller can read", tag: "tenants", query: pageQuery },
  { method: "post", path: "/api/v1/admin/tenants", summary: "Create a tenant (owners)", tag: "tenants", body: createTenantInput, created: true },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}", summary: "One tenant", tag: "tenants" },
  { method: "patch", path: "/api/v1/admin/tenants/{tenantId}", summary: "Rename; disable or enable (owners)", tag: "tenants", body: updateTenantInput },
  { method: "get", path: "/api/v1/admin/tenants/{tenantId}/members", summary: "Members and their roles", tag: "tenants" },
  { method: "post", path: "/api/v1/admin/tenants/{tenantId}/members", summary: "Add a member (creates the user when unknown)", tag: "tenants", body: addMemberInput, created: true },
  { method: "patch", path: "/api/v1/admin/tenants/{tenantId}/members/{userId}", summary: "Change a member's role", tag: "tenants", body: updateMemberInput },
  { method: "delete", path: "/api/v1/admin/tenants/{tenantId}/members/{userId}", summary: "Remove a member", tag: "tenants", noContent: true },
  { method: "get", path: "/api/v1/admin/servers", summary: "MCP servers the caller can read", tag: "servers", query: serversQuery },
  { method: "post", path: "/api/v1/admin/servers", summary: "Register an MCP server (a protected resource)", tag: "servers", body: createServerInput, created: true },
  { method: "get", path: "/api/v1/admin/servers/{serverId}", summary: "One server with its Protected Resource Metadata", tag: "servers" },
  { method: "patch", path: "/api/v1/admin/servers/{serverId}", summary: "Change a server", tag: "servers", body: updateServerInput },
  { method: "delete", path: "/api/v1/admin/servers/{serverId}", summary: "Delete a server and its catalogue", tag: "servers", noContent: true },
  { method: "get", path: "/api/v1/admin/servers/{serverId}/tools", summary: "The server's tool catalogue", tag: "catalogue", query: toolListQuery },
  { method: "post", path: "/api/v1/admin/servers/{serverId}/tools", summary: "Add a tool by hand (approved at once)", tag: "catalogue", body: addToolInput, created: true },
  { method: "post", path: "/api/v1/admin/servers/{serverId}/import", summary: "Import tools/list from the live upstream (official MCP SDK client)", tag: "catalogue" },
  { method: "get", path: "/api/v1/admin/servers/{serverId}/scopes", summary: "The current scope × tool matrix", tag: "scopes" },
  { method: "put", path: "/api/v1/admin/servers/{serverId}/scopes", summary: "Save a new version of the matrix (optimistic: baseVersion)", tag: "scopes", body: putScopeMappingInput },
  { method: "get", path: "/api/v1/admin/servers/{serverId}/scopes/versions", summary: "Every saved version of the matrix", tag: "scopes" },
  { method: "get", path: "/api/v1/admin/tools/{toolId}", summary: "A tool, its versions and the pending diff", tag: "catalogue" },
  { method: "patch", path: "/api/v1/admin/tools/{toolId}", summary: "Set the risk label", tag: "catalogue", body: updateToolInput },
  { method: "post", path: "/api/v1/admin/tools/{toolId}/approve", summary: "Approve the reviewed latest version", tag: "catalogue", body: approveToolInput },
  { method: "post", path: "/api/v1/admin/tools/{toolId}/block", summary: "Block a tool", tag: "catalogue", body: blockToolInput },
  { method: "delete", path: "/api/v1/admin/tools/{toolId}/block", summary: "Unblock a tool", tag: "catalogue" },
  { method: "get", path: "/api/v1/admin/trail", summary: "The admin trail, newest first, keyset-paged", tag: "trail", query: trailQuery },
  { method: "get", path: "/api/v1/admin/tokens", summary: "API tokens the caller manages", tag: "tokens" },
  { method: "post", path: "/api/v1/admin/tokens", summary: "Create an API token; the secret is in this answer only", tag: "tokens", body: createTokenInput, created: true },
  { method: "delete", path: "/api/v1/admin/tokens/{tokenId}", summary: "Revoke an API token", tag: "tokens", noContent: true },
];

const jsonSchema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any", target: "openapi-3.0" });

const errorSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", example: "validation_failed" },
        message: { type: "string" },
        issues: { type: "array", items: { type: "object", properties: { path: { type: "string" }, message: { type: "string" } } } },
      },
    },
  },
};

/** The OpenAPI 3.0 document of the admin API, built from the same zod schemas the routes parse with. */
export function openApiDocument(serverUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
    const queryParams = op.query
      ? Object.entries((jsonSchema(op.query) as { properties?: Record<string, { description?: string }> }).properties ?? {}).map(([name, schema]) => ({
          name,
          in: "query",
          required: false,
          description: schema.description,
          schema,
        }))
      : [];
    const err = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      tags: [op.tag],
      parameters: [...params, ...queryParams],
      ...(op.body ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(op.body) } } } } : {}),
      responses: {
        [op.noContent ? "204" : op.created ? "201" : "200"]: op.noContent ? { description: "Done" } : { description: "OK", content: { "application/json": { schema: { type: "object" } } } },
        "401": err("No valid session or API token"),
        "403": err("Not allowed (or cross-site request refused)"),
        "404": err("Not found, or in a tenant the caller cannot read"),
        ...(op.body ? { "409": err("Conflicts with the current state"), "413": err("Body over 256 KiB"), "422": err("Invalid input; issues name each field") } : {}),
      },
    };
  }
  return {
    openapi: "3.0.3",
    info: {
      title: "Mandate admin API",
      version: "1",
      description:
        "Manage tenants, MCP servers, tool catalogues and scope mappings. Authenticate with `Authorization: Bearer mdt_…` (an API token created in Settings), or the dashboard session cookie (same-origin writes only).",
    },
    servers: [{ url: serverUrl }],
    security: [{ apiToken: [] }],
    components: {
      securitySchemes: { apiToken: { type: "http", scheme: "bearer", description: "An API token (mdt_…)" } },
      schemas: { Error: errorSchema },
    },
    paths,
  };
}
