import { api } from "@/lib/http/api";
import { serverSchema } from "@/lib/policy/service";

// GET /api/v1/admin/servers/{serverId}/cedar-schema - the Cedar schema policies of this server are validated against
export const GET = api({}, ({ ctx, params }) => serverSchema(ctx, params.serverId!));
