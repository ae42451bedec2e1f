import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { createMaskingRule, listMaskingRules, maskingRuleInput } from "@/lib/masking/service";

// GET /api/v1/admin/servers/{serverId}/masking - the server's decision masking rules
export const GET = api({}, ({ ctx, params }) => listMaskingRules(ctx, params.serverId!));

// POST /api/v1/admin/servers/{serverId}/masking - add a masking rule (republishes the live bundles serving the server)
export const POST = api({ body: maskingRuleInput, status: 201 }, ({ ctx, params, body }) => createMaskingRule(ctx, params.serverId!, body, getEnv().kek));
