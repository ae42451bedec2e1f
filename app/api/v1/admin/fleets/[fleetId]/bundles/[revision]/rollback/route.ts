import { rollbackBundle } from "@/lib/bundles/service";
import { getEnv } from "@/lib/env";
import { AppError } from "@/lib/errors";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/fleets/{fleetId}/bundles/{revision}/rollback - publish that revision's content as a new revision
export const POST = api({ status: 201 }, ({ ctx, params }) => {
  const revision = Number(params.revision);
  if (!Number.isSafeInteger(revision) || revision < 1) throw new AppError("bad_request", "revision must be a positive integer");
  return rollbackBundle(ctx, params.fleetId!, revision, getEnv().kek);
});
