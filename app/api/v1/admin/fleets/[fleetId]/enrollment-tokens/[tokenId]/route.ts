import { revokeEnrollmentToken } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/fleets/{fleetId}/enrollment-tokens/{tokenId} - revoke an unused enrollment token (owners)
export const DELETE = api({}, ({ ctx, params }) => revokeEnrollmentToken(ctx, params.fleetId!, params.tokenId!));
