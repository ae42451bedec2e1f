import { importCatalog } from "@/lib/catalog/service";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/servers/{serverId}/import - import tools, resources, resource templates and prompts from the live upstream
export const POST = api({}, ({ ctx, params }) => importCatalog(ctx, params.serverId!));
