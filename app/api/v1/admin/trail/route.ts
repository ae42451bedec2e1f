import { api } from "@/lib/http/api";
import { listTrail, trailQuery } from "@/lib/trail/service";

// GET /api/v1/admin/trail - the admin trail, newest first, keyset-paged
export const GET = api({ query: trailQuery }, ({ ctx, query }) => listTrail(ctx, query));
