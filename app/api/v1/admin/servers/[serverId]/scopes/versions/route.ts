import { api } from "@/lib/http/api";
import { listScopeMappingVersions } from "@/lib/scopes/service";

// GET /api/v1/admin/servers/{serverId}/scopes/versions - every saved version, newest first
export const GET = api({}, async ({ ctx, params }) => ({ items: await listScopeMappingVersions(ctx, params.serverId!) }));
