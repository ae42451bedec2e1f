import { api } from "@/lib/http/api";
import { entryAgents } from "@/lib/vault/usage";

// GET /api/v1/admin/vault/{entryId}/agents - the agents that may use this entry and the version each reported holding
export const GET = api({}, ({ ctx, params }) => entryAgents(ctx, params.entryId!));
