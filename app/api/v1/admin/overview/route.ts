import { api } from "@/lib/http/api";
import { overviewHealth, overviewHealthQuery } from "@/lib/overview/health";

// GET /api/v1/admin/overview - operational health counts for the dashboard Overview
export const GET = api({ query: overviewHealthQuery }, ({ ctx, query }) => overviewHealth(ctx, query));
