import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { listRevocations, revocationListQuery, revokeAll, revokeInput } from "@/lib/grants/service";

// GET /api/v1/admin/revocations - revocation history, newest first
export const GET = api({ query: revocationListQuery }, ({ ctx, query }) => listRevocations(ctx, query));

// POST /api/v1/admin/revocations - revoke every grant of a user or of a client in a tenant
export const POST = api({ body: revokeInput, status: 201 }, ({ ctx, body }) => revokeAll(ctx, body, getEnv().kek));
