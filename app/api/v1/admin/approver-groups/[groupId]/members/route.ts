import { addGroupMember, groupMemberInput } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/approver-groups/{groupId}/members - add a user who holds a role in the group's tenant
export const POST = api({ body: groupMemberInput, status: 201 }, ({ ctx, params, body }) => addGroupMember(ctx, params.groupId!, body));
