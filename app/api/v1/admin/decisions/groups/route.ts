import { decisionGroupQuery, groupDecisions } from "@/lib/decisions/group";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions/groups - counts of the filter's decisions per tool, user, client, policy or outcome
export const GET = api({ query: decisionGroupQuery }, ({ ctx, query }) => groupDecisions(ctx, query));
