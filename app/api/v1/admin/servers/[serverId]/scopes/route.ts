import { api } from "@/lib/http/api";
import { getScopeMapping, putScopeMapping, putScopeMappingInput } from "@/lib/scopes/service";

// GET /api/v1/admin/servers/{serverId}/scopes - the current scope × tool matrix
export const GET = api({}, ({ ctx, params }) => getScopeMapping(ctx, params.serverId!));

// PUT /api/v1/admin/servers/{serverId}/scopes - save a new version of the matrix
export const PUT = api({ body: putScopeMappingInput }, ({ ctx, params, body }) => putScopeMapping(ctx, params.serverId!, body));
