import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { makeCurrentInput, makeVersionCurrent } from "@/lib/vault/rollback";

// POST /api/v1/admin/vault/{entryId}/make-current - make an earlier version current again (the replaced one in grace)
export const POST = api({ body: makeCurrentInput }, ({ ctx, params, body }) => makeVersionCurrent(ctx, params.entryId!, body, getEnv().kek));
