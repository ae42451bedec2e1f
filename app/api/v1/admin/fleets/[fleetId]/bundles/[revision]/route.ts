import { getBundle } from "@/lib/bundles/service";
import { AppError } from "@/lib/errors";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/fleets/{fleetId}/bundles/{revision} - one signed revision with its content
export const GET = api({}, ({ ctx, params }) => {
  const revision = Number(params.revision);
  if (!Number.isSafeInteger(revision) || revision < 1) throw new AppError("bad_request", "revision must be a positive integer");
  return getBundle(ctx, params.fleetId!, revision);
});
