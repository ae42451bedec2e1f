import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { confirmOrigin, confirmOriginInput } from "@/lib/vault/service";

// POST /api/v1/admin/vault/{entryId}/confirm-origin - confirm a suspended secret for the server's new upstream origin
export const POST = api({ body: confirmOriginInput }, ({ ctx, params, body }) => confirmOrigin(ctx, params.entryId!, body, getEnv().kek));
