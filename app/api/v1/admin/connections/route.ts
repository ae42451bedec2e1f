import { connectionListQuery, listConnections } from "@/lib/connections/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/connections - the caller's upstream connections (view=mine), or those it administers (view=all, vault.write)
export const GET = api({ query: connectionListQuery }, ({ ctx, query }) => listConnections(ctx, query));
