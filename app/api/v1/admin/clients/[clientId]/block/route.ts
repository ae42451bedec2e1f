import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { blockClient } from "@/lib/grants/service";

// POST /api/v1/admin/clients/{clientId}/block - block a client
export const POST = api({}, ({ ctx, params }) => blockClient(ctx, params.clientId!, getEnv().kek));
