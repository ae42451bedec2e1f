import { decisionCharts, decisionChartsQuery } from "@/lib/decisions/charts";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions/charts - decisions over time by outcome; top denied tools, users, clients
export const GET = api({ query: decisionChartsQuery }, ({ ctx, query }) => decisionCharts(ctx, query));
