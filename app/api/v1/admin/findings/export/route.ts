import { api } from "@/lib/http/api";
import { exportFindings, findingExportQuery } from "@/lib/findings/service";

// GET /api/v1/admin/findings/export - the findings as a CSV or NDJSON attachment
export const GET = api({ query: findingExportQuery }, async ({ ctx, query }) => {
  const e = await exportFindings(ctx, query);
  return new Response(e.body, { status: 200, headers: { "content-type": e.contentType, "content-disposition": `attachment; filename="${e.filename}"`, "cache-control": "no-store" } });
});
