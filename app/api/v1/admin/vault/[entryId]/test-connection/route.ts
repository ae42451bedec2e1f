import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { testConnection } from "@/lib/vault/test-connection";

// POST /api/v1/admin/vault/{entryId}/test-connection - call the upstream with this entry's current secret and say what happened
export const POST = api({}, ({ ctx, params }) => testConnection(ctx, params.entryId!, () => getEnv().keyring));
