import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { rotateEntry, rotateEntryInput } from "@/lib/vault/service";

// POST /api/v1/admin/vault/{entryId}/rotate - add a version, current now (previous in grace) or scheduled
export const POST = api({ body: rotateEntryInput }, ({ ctx, params, body }) => rotateEntry(ctx, params.entryId!, body, getEnv().kek));
