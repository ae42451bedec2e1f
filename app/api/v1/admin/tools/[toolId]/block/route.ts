import { blockTool, blockToolInput, unblockTool } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/tools/{toolId}/block - block a tool (never callable, whatever the policies say)
export const POST = api({ body: blockToolInput }, ({ ctx, params, body }) => blockTool(ctx, params.toolId!, body));

// DELETE /api/v1/admin/tools/{toolId}/block - unblock a tool
export const DELETE = api({}, ({ ctx, params }) => unblockTool(ctx, params.toolId!));
