import { createEnrollmentToken, createEnrollmentTokenInput, listEnrollmentTokens } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets/{fleetId}/enrollment-tokens - the fleet's enrollment tokens, never their secrets
export const GET = api({}, async ({ ctx, params }) => ({ items: await listEnrollmentTokens(ctx, params.fleetId!) }));

// POST /api/v1/admin/fleets/{fleetId}/enrollment-tokens - mint a one-time enrollment token, shown once (owners)
export const POST = api({ body: createEnrollmentTokenInput, status: 201 }, ({ ctx, params, body }) => createEnrollmentToken(ctx, params.fleetId!, body));
