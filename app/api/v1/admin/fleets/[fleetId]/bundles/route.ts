import { listBundles, publishBundle, publishInput } from "@/lib/bundles/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets/{fleetId}/bundles - published revisions, newest first
export const GET = api({}, ({ ctx, params }) => listBundles(ctx, params.fleetId!));

// POST /api/v1/admin/fleets/{fleetId}/bundles - publish the draft (blocked by any error or failing test)
export const POST = api({ body: publishInput, status: 201 }, ({ ctx, params, body }) => publishBundle(ctx, params.fleetId!, body, getEnv().kek));
