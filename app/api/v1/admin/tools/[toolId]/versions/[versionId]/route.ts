import { getToolVersion } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/tools/{toolId}/versions/{versionId} - one version with its full definition
export const GET = api({}, ({ ctx, params }) => getToolVersion(ctx, params.toolId!, params.versionId!));
