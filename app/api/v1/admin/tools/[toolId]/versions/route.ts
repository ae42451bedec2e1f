import { listToolVersions, toolVersionListQuery } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/tools/{toolId}/versions - the version history, newest first, paged, as summaries
export const GET = api({ query: toolVersionListQuery }, ({ ctx, params, query }) => listToolVersions(ctx, params.toolId!, query));
