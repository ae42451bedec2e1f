import { createApiToken, createTokenInput, listApiTokens } from "@/lib/auth/tokens";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/tokens - API tokens the caller manages
export const GET = api({}, async ({ ctx }) => ({ items: await listApiTokens(ctx) }));

// POST /api/v1/admin/tokens - create an API token; the secret is in this answer only
export const POST = api({ body: createTokenInput, status: 201 }, ({ ctx, body }) => createApiToken(ctx, body));
