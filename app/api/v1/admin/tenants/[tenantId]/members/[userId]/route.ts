import { api } from "@/lib/http/api";
import { removeMember, updateMember, updateMemberInput } from "@/lib/tenants/service";

// PATCH /api/v1/admin/tenants/{tenantId}/members/{userId} - change a member's role
export const PATCH = api({ body: updateMemberInput }, ({ ctx, params, body }) => updateMember(ctx, params.tenantId!, params.userId!, body));

// DELETE /api/v1/admin/tenants/{tenantId}/members/{userId} - remove a member
export const DELETE = api({}, ({ ctx, params }) => removeMember(ctx, params.tenantId!, params.userId!));
