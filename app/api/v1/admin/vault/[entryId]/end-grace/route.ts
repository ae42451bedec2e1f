import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { endGrace, endGraceInput } from "@/lib/vault/rollback";

// POST /api/v1/admin/vault/{entryId}/end-grace - stop accepting a version in its grace period now
export const POST = api({ body: endGraceInput }, ({ ctx, params, body }) => endGrace(ctx, params.entryId!, body, getEnv().kek));
