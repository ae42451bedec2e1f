import { removeGroupMember } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/approver-groups/{groupId}/members/{userId} - remove a member
export const DELETE = api({}, ({ ctx, params }) => removeGroupMember(ctx, params.groupId!, params.userId!));
