import { startConnect } from "@/lib/connections/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/connections/requests/{requestId}/start - start the authorization code flow (PKCE, signed state) at the upstream's AS; answers the URL to open
export const POST = api({}, ({ ctx, params }) => startConnect(ctx, params.requestId!, { kek: getEnv().kek, keyring: getEnv().keyring, origin: getEnv().NEXTAUTH_URL }));
