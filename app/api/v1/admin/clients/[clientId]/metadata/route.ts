import { api } from "@/lib/http/api";
import { refreshClientMetadata } from "@/lib/grants/service";

// POST /api/v1/admin/clients/{clientId}/metadata - fetch the client ID metadata document; store name and redirect URIs
export const POST = api({}, ({ ctx, params }) => refreshClientMetadata(ctx, params.clientId!));
