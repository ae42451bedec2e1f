import { api } from "@/lib/http/api";
import { applyRemedy, remedyInput } from "@/lib/findings/service";

// POST /api/v1/admin/findings/{findingId}/remedy - create the remedy's draft (scope mapping, block or policy) after its impact; publish it from the fleet page
export const POST = api({ body: remedyInput, status: 201 }, ({ ctx, params, body }) => applyRemedy(ctx, params.findingId!, body));
