import { analyzeImpact, impactInput } from "@/lib/bundles/impact";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/fleets/{fleetId}/impact - replay recent decisions against the live bundle and the draft: what would change
export const POST = api({ body: impactInput }, ({ ctx, params, body }) => analyzeImpact(ctx, params.fleetId!, body));
