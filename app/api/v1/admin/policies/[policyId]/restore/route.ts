import { api } from "@/lib/http/api";
import { policyRestoreInput, restorePolicyVersion } from "@/lib/policy/restore";

// POST /api/v1/admin/policies/{policyId}/restore - a version from the policy's history becomes its draft again
export const POST = api({ body: policyRestoreInput }, ({ ctx, params, body }) => restorePolicyVersion(ctx, params.policyId!, body));
