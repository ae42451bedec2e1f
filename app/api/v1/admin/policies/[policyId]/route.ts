import { api } from "@/lib/http/api";
import { deletePolicy, getPolicy, policyUpdateInput, updatePolicy } from "@/lib/policy/service";

// GET /api/v1/admin/policies/{policyId} - one policy with its Cedar
export const GET = api({}, ({ ctx, params }) => getPolicy(ctx, params.policyId!));

// PATCH /api/v1/admin/policies/{policyId} - change a policy (revalidated)
export const PATCH = api({ body: policyUpdateInput }, ({ ctx, params, body }) => updatePolicy(ctx, params.policyId!, body));

// DELETE /api/v1/admin/policies/{policyId} - delete a policy
export const DELETE = api({}, ({ ctx, params }) => deletePolicy(ctx, params.policyId!));
