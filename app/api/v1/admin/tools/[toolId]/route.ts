import { getTool, updateTool, updateToolInput } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/tools/{toolId} - a tool, its versions and the pending diff
export const GET = api({}, ({ ctx, params }) => getTool(ctx, params.toolId!));

// PATCH /api/v1/admin/tools/{toolId} - set the risk label
export const PATCH = api({ body: updateToolInput }, ({ ctx, params, body }) => updateTool(ctx, params.toolId!, body));
