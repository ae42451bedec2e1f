import { api } from "@/lib/http/api";
import { clientListQuery, listClients } from "@/lib/grants/service";

// GET /api/v1/admin/clients - a tenant's OAuth clients and whether it requires approval
export const GET = api({ query: clientListQuery }, ({ ctx, query }) => listClients(ctx, query.tenantId));
