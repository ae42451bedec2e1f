import { api } from "@/lib/http/api";
import { pageQuery } from "@/lib/pagination";
import { createTenant, createTenantInput, listTenants } from "@/lib/tenants/service";

// GET /api/v1/admin/tenants - tenants the caller can read
export const GET = api({ query: pageQuery }, ({ ctx, query }) => listTenants(ctx, query));

// POST /api/v1/admin/tenants - create a tenant (owners)
export const POST = api({ body: createTenantInput, status: 201 }, ({ ctx, body }) => createTenant(ctx, body));
