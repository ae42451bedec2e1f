import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { deleteTenantIssuer, getTenantIssuer, tenantIssuerInput, updateTenantIssuer } from "@/lib/tenants/trust";

// GET /api/v1/admin/tenants/{tenantId}/issuers/{issuerId} - one trusted issuer
export const GET = api({}, ({ ctx, params }) => getTenantIssuer(ctx, params.tenantId!, params.issuerId!));

// PUT /api/v1/admin/tenants/{tenantId}/issuers/{issuerId} - replace a trusted issuer's configuration (the old one leaves live bundles at once, the new one comes with the next publish)
export const PUT = api({ body: tenantIssuerInput }, ({ ctx, params, body }) => updateTenantIssuer(ctx, params.tenantId!, params.issuerId!, body, getEnv().kek));

// DELETE /api/v1/admin/tenants/{tenantId}/issuers/{issuerId} - stop trusting an issuer (live bundles are republished without it at once)
export const DELETE = api({}, ({ ctx, params }) => deleteTenantIssuer(ctx, params.tenantId!, params.issuerId!, getEnv().kek));
