import { api } from "@/lib/http/api";
import { getTenant, updateTenant, updateTenantInput } from "@/lib/tenants/service";

// GET /api/v1/admin/tenants/{tenantId} - one tenant
export const GET = api({}, ({ ctx, params }) => getTenant(ctx, params.tenantId!));

// PATCH /api/v1/admin/tenants/{tenantId} - rename; disable or enable (owners)
export const PATCH = api({ body: updateTenantInput }, ({ ctx, params, body }) => updateTenant(ctx, params.tenantId!, body));
