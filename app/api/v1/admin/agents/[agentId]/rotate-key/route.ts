import { rotateAgentKey } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/agents/{agentId}/rotate-key - replace the agent's key; the new key is shown once (owners)
export const POST = api({}, ({ ctx, params }) => rotateAgentKey(ctx, params.agentId!));
