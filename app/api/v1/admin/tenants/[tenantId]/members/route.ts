import { invitationSettingsFrom } from "@/lib/auth/invitations";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { addMember, addMemberInput, listMembers } from "@/lib/tenants/service";

// GET /api/v1/admin/tenants/{tenantId}/members - members and their roles
export const GET = api({}, async ({ ctx, params }) => ({ items: await listMembers(ctx, params.tenantId!) }));

// POST /api/v1/admin/tenants/{tenantId}/members - add a member (an unknown e-mail creates the user and returns its invitation link once)
export const POST = api({ body: addMemberInput, status: 201 }, ({ ctx, params, body }) => addMember(ctx, params.tenantId!, body, invitationSettingsFrom(getEnv())));
