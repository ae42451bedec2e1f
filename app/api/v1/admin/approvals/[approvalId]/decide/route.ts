import { decideApproval, decideApprovalInput } from "@/lib/approvals/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/approvals/{approvalId}/decide - approve (this call, or similar calls for N minutes) or reject, with a reason; agents learn of it at once
export const POST = api({ body: decideApprovalInput }, ({ ctx, params, body }) => decideApproval(ctx, params.approvalId!, body, getEnv().kek));
