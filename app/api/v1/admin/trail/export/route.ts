import { exportResponse } from "@/lib/decisions/export";
import { api } from "@/lib/http/api";
import { exportTrail, trailExportQuery } from "@/lib/trail/service";

// GET /api/v1/admin/trail/export - the filtered admin trail as a streamed CSV or NDJSON attachment
export const GET = api({ query: trailExportQuery }, async ({ ctx, query }) => {
  const e = exportTrail(ctx, query);
  return exportResponse(e.stream, e.format, e.filename);
});
