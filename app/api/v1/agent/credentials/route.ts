import { getEnv } from "@/lib/env";
import { agentApi } from "@/lib/http/agent-api";
import { resolveCredential, resolveCredentialInput } from "@/lib/vault/service";

// POST /api/v1/agent/credentials - the upstream secret for (server, tenant), for an agent whose fleet serves the server
export const POST = agentApi({ body: resolveCredentialInput }, ({ db, agent, body }) => resolveCredential(db, agent, body, getEnv().keyring));
