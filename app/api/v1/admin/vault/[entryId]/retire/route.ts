import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { retireEntry } from "@/lib/vault/service";

// POST /api/v1/admin/vault/{entryId}/retire - retire the entry and every version of it
export const POST = api({}, ({ ctx, params }) => retireEntry(ctx, params.entryId!, getEnv().kek));
