import { heartbeatInput, recordHeartbeat } from "@/lib/agents/service";
import { agentApi } from "@/lib/http/agent-api";

// POST /api/v1/agent/heartbeat - report version, enforced revision, counters and errors
export const POST = agentApi({ body: heartbeatInput }, ({ db, agent, body }) => recordHeartbeat(db, agent, body));
