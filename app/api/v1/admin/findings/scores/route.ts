import { api } from "@/lib/http/api";
import { scoreHistory, scoreQuery } from "@/lib/findings/service";

// GET /api/v1/admin/findings/scores - a tenant's privilege score per day and now
export const GET = api({ query: scoreQuery }, ({ ctx, query }) => scoreHistory(ctx, query));
