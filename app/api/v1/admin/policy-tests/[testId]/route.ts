import { api } from "@/lib/http/api";
import { deleteTest, policyTestUpdateInput, updateTest } from "@/lib/policy/service";

// PATCH /api/v1/admin/policy-tests/{testId} - change a test
export const PATCH = api({ body: policyTestUpdateInput }, ({ ctx, params, body }) => updateTest(ctx, params.testId!, body));

// DELETE /api/v1/admin/policy-tests/{testId} - delete a test
export const DELETE = api({}, ({ ctx, params }) => deleteTest(ctx, params.testId!));
