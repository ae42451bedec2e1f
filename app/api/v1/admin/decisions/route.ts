import { decisionSearchQuery, searchDecisions } from "@/lib/decisions/query";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions - search decisions, newest first, keyset-paged
export const GET = api({ query: decisionSearchQuery }, ({ ctx, query }) => searchDecisions(ctx, query));
