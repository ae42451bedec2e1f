import { connectionTokenInput } from "@/lib/connections/contract";
import { tokenForAgent } from "@/lib/connections/service";
import { getEnv } from "@/lib/env";
import { agentApi } from "@/lib/http/agent-api";

// POST /api/v1/agent/connections/token - the calling user's upstream access token (brokered per-user OAuth), or the connect page the user must open
export const POST = agentApi({ body: connectionTokenInput }, ({ db, agent, body }) => tokenForAgent(db, agent, body, { kek: getEnv().kek, keyring: getEnv().keyring, origin: getEnv().NEXTAUTH_URL }));
