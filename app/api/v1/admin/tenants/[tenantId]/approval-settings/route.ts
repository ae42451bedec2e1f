import { getApprovalSettings, saveApprovalSettings } from "@/lib/approvals/notify";
import { approvalSettingsInput } from "@/lib/approvals/service";
import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/tenants/{tenantId}/approval-settings - request expiry and the webhook's host
export const GET = api({}, ({ ctx, params }) => getApprovalSettings(ctx, params.tenantId!));
// PUT /api/v1/admin/tenants/{tenantId}/approval-settings - set request expiry and the webhook (write-only)
export const PUT = api({ body: approvalSettingsInput }, ({ ctx, params, body }) => saveApprovalSettings(ctx, params.tenantId!, body, getEnv().kek));
