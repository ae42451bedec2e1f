import { reportFromAgent } from "@/lib/approvals/service";
import { approvalReport } from "@/lib/enforcement/approval";
import { getEnv } from "@/lib/env";
import { agentApi } from "@/lib/http/agent-api";

// POST /api/v1/agent/approvals - a call waits for approval (files or finds its open request), or an approved call was executed
export const POST = agentApi({ body: approvalReport }, ({ db, agent, body }) => reportFromAgent(db, agent, body, getEnv().NEXTAUTH_URL, getEnv().kek));
