import { addTool, addToolInput, listTools, toolListQuery } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/servers/{serverId}/tools - the server's catalogue of one kind (tools by default)
export const GET = api({ query: toolListQuery }, ({ ctx, params, query }) => listTools(ctx, params.serverId!, query));

// POST /api/v1/admin/servers/{serverId}/tools - add a tool by hand (approved at once)
export const POST = api({ body: addToolInput, status: 201 }, ({ ctx, params, body }) => addTool(ctx, params.serverId!, body));
