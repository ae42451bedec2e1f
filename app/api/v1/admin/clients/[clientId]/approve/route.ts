import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { approveClient } from "@/lib/grants/service";

// POST /api/v1/admin/clients/{clientId}/approve - approve a client (its calls are allowed when the tenant requires approval)
export const POST = api({}, ({ ctx, params }) => approveClient(ctx, params.clientId!, getEnv().kek));
