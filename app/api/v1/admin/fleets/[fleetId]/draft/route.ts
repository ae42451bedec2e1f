import { draftBundle } from "@/lib/bundles/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets/{fleetId}/draft - the next revision as it would be published: issues, tests, diff
export const GET = api({}, ({ ctx, params }) => draftBundle(ctx, params.fleetId!));
