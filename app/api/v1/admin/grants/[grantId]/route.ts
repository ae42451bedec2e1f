import { api } from "@/lib/http/api";
import { getGrant } from "@/lib/grants/service";

// GET /api/v1/admin/grants/{grantId} - one grant with its usage
export const GET = api({}, ({ ctx, params }) => getGrant(ctx, params.grantId!));
