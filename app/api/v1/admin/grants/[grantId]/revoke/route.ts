import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { revokeGrant, revokeGrantInput } from "@/lib/grants/service";

// POST /api/v1/admin/grants/{grantId}/revoke - refuse the grant's tokens issued before now, on every agent
export const POST = api({ body: revokeGrantInput, status: 201 }, ({ ctx, params, body }) => revokeGrant(ctx, params.grantId!, body, getEnv().kek));
