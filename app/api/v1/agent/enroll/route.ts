import { enrollAgent, enrollInput } from "@/lib/agents/service";
import { agentApi } from "@/lib/http/agent-api";

// POST /api/v1/agent/enroll - exchange a one-time enrollment token for an agent key (shown once)
export const POST = agentApi({ auth: false, body: enrollInput, status: 201 }, ({ db, body }) => enrollAgent(db, body));
