import { approvalListQuery, listApprovals } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/approvals - approval requests, newest first (view=mine: those the caller may decide)
export const GET = api({ query: approvalListQuery }, ({ ctx, query }) => listApprovals(ctx, query));
