import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { deleteMaskingRule, maskingRuleInput, updateMaskingRule } from "@/lib/masking/service";

// PUT /api/v1/admin/servers/{serverId}/masking/{ruleId} - replace a masking rule
export const PUT = api({ body: maskingRuleInput }, ({ ctx, params, body }) => updateMaskingRule(ctx, params.serverId!, params.ruleId!, body, getEnv().kek));

// DELETE /api/v1/admin/servers/{serverId}/masking/{ruleId} - remove a masking rule
export const DELETE = api({}, ({ ctx, params }) => deleteMaskingRule(ctx, params.serverId!, params.ruleId!, getEnv().kek));
