import { api } from "@/lib/http/api";
import { findingListQuery, listFindings } from "@/lib/findings/service";

// GET /api/v1/admin/findings - least-privilege findings of the tenants the caller reads, with evidence, remedies and privilege scores
export const GET = api({ query: findingListQuery }, ({ ctx, query }) => listFindings(ctx, query));
