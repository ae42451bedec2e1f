import { api } from "@/lib/http/api";
import { createTenantIssuer, listTenantIssuers, tenantIssuerInput } from "@/lib/tenants/trust";

// GET /api/v1/admin/tenants/{tenantId}/issuers - the issuers this tenant trusts
export const GET = api({}, async ({ ctx, params }) => ({ items: await listTenantIssuers(ctx, params.tenantId!) }));

// POST /api/v1/admin/tenants/{tenantId}/issuers - trust an issuer for this tenant (key source, claims, tenant mapping)
export const POST = api({ body: tenantIssuerInput, status: 201 }, ({ ctx, params, body }) => createTenantIssuer(ctx, params.tenantId!, body));
