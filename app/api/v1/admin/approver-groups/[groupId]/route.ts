import { deleteGroup } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/approver-groups/{groupId} - delete an approver group (its open requests then have no approvers)
export const DELETE = api({}, ({ ctx, params }) => deleteGroup(ctx, params.groupId!));
