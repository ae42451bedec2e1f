import { approveTool, approveToolInput } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/tools/{toolId}/approve - approve the reviewed latest version
export const POST = api({ body: approveToolInput }, ({ ctx, params, body }) => approveTool(ctx, params.toolId!, body));
