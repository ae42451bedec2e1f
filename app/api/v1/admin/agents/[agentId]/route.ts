import { revokeAgent } from "@/lib/fleets/service";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/agents/{agentId} - revoke an agent: its key stops working at once (owners)
export const DELETE = api({}, ({ ctx, params }) => revokeAgent(ctx, params.agentId!));
