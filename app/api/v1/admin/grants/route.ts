import { api } from "@/lib/http/api";
import { grantListQuery, listGrants } from "@/lib/grants/service";

// GET /api/v1/admin/grants - delegated grants with usage, most recently used first
export const GET = api({ query: grantListQuery }, ({ ctx, query }) => listGrants(ctx, query));
