import { revokeApiToken } from "@/lib/auth/tokens";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/tokens/{tokenId} - revoke an API token
export const DELETE = api({}, ({ ctx, params }) => revokeApiToken(ctx, params.tokenId!));
