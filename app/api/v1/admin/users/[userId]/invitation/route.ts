import { invitationSettingsFrom, reissueInvitation } from "@/lib/auth/invitations";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/users/{userId}/invitation - a new invitation link for a user with no credential yet (owners); earlier links stop working
export const POST = api({ status: 201 }, ({ ctx, params }) => reissueInvitation(ctx, params.userId!, invitationSettingsFrom(getEnv())));
