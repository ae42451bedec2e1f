import { decisionExportQuery, exportDecisions, exportResponse } from "@/lib/decisions/export";
import { api, authenticate } from "@/lib/http/api";

// GET /api/v1/admin/decisions/export - the filter's decisions as a streamed CSV or NDJSON attachment (follow=1: live)
export const GET = api({ query: decisionExportQuery }, async ({ ctx, query, req }) => {
  const e = exportDecisions(ctx, query, { reauth: () => authenticate(req), signal: req.signal });
  return exportResponse(e.stream, e.format, e.filename);
});
