import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { resetClient } from "@/lib/grants/service";

// POST /api/v1/admin/clients/{clientId}/reset - put a client back to pending
export const POST = api({}, ({ ctx, params }) => resetClient(ctx, params.clientId!, getEnv().kek));
