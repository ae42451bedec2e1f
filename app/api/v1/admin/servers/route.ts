import { z } from "zod";
import { api } from "@/lib/http/api";
import { pageQuery } from "@/lib/pagination";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer, listServers } from "@/lib/servers/service";

const query = pageQuery.extend({ tenantId: z.string().optional().describe("Only servers this tenant may use") });

// GET /api/v1/admin/servers - MCP servers the caller can read
export const GET = api({ query }, ({ ctx, query }) => listServers(ctx, query));

// POST /api/v1/admin/servers - register an MCP server (a protected resource)
export const POST = api({ body: createServerInput, status: 201 }, ({ ctx, body }) => createServer(ctx, body));
