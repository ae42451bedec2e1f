import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { updateServerInput } from "@/lib/servers/schemas";
import { deleteServer, getServer, updateServer } from "@/lib/servers/service";

// GET /api/v1/admin/servers/{serverId} - one server with its PRM document
export const GET = api({}, ({ ctx, params }) => getServer(ctx, params.serverId!));

// PATCH /api/v1/admin/servers/{serverId} - change a server
export const PATCH = api({ body: updateServerInput }, ({ ctx, params, body }) => updateServer(ctx, params.serverId!, body, getEnv().kek));

// DELETE /api/v1/admin/servers/{serverId} - delete a server and its catalogue
export const DELETE = api({}, ({ ctx, params }) => deleteServer(ctx, params.serverId!));
