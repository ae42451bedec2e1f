import { getDecision } from "@/lib/decisions/query";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions/{decisionId} - one decision with its policies at that revision, claims and a simulator link
export const GET = api({}, ({ ctx, params }) => getDecision(ctx, params.decisionId!));
