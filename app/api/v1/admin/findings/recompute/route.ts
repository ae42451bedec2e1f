import { api } from "@/lib/http/api";
import { recomputeFindings, recomputeInput } from "@/lib/findings/service";

// POST /api/v1/admin/findings/recompute - recompute now, and store, the findings of the scopes the caller reads (rate-limited per user, in the trail)
export const POST = api({ body: recomputeInput }, ({ ctx, body }) => recomputeFindings(ctx, body));
