import { api } from "@/lib/http/api";
import { addMember, addMemberInput, listMembers } from "@/lib/tenants/service";

// GET /api/v1/admin/tenants/{tenantId}/members - members and their roles
export const GET = api({}, async ({ ctx, params }) => ({ items: await listMembers(ctx, params.tenantId!) }));

// POST /api/v1/admin/tenants/{tenantId}/members - add a member (creates the user when unknown)
export const POST = api({ body: addMemberInput, status: 201 }, ({ ctx, params, body }) => addMember(ctx, params.tenantId!, body));
