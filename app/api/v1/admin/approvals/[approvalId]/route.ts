import { getApproval } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/approvals/{approvalId} - one approval request (canDecide, ownRequest for the caller)
export const GET = api({}, ({ ctx, params }) => getApproval(ctx, params.approvalId!));
