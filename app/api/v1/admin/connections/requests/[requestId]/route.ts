import { getConnectRequest } from "@/lib/connections/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/connections/requests/{requestId} - a connect request of the signed-in user (404 for anyone else)
export const GET = api({}, ({ ctx, params }) => getConnectRequest(ctx, params.requestId!));
