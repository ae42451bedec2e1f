import { api } from "@/lib/http/api";
import { previewRemedy, remedyInput } from "@/lib/findings/service";

// POST /api/v1/admin/findings/{findingId}/preview - what a policy-changing remedy would change and its impact on the window's traffic (writes nothing)
export const POST = api({ body: remedyInput }, ({ ctx, params, body }) => previewRemedy(ctx, params.findingId!, body));
