import { endConnectionAs } from "@/lib/connections/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/connections/{connectionId} - disconnect one's own connection, or revoke one (vault.write in its tenant); agents drop its token at once
export const DELETE = api({}, ({ ctx, params }) => endConnectionAs(ctx, params.connectionId!, { kek: getEnv().kek }));
