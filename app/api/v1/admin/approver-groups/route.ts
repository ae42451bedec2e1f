import { createGroup, createGroupInput, groupListQuery, listGroups } from "@/lib/approvals/service";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/approver-groups?tenantId= - a tenant's approver groups and their members
export const GET = api({ query: groupListQuery }, ({ ctx, query }) => listGroups(ctx, query.tenantId));
// POST /api/v1/admin/approver-groups - create a named approver group (the name @approval("…") uses)
export const POST = api({ body: createGroupInput, status: 201 }, ({ ctx, body }) => createGroup(ctx, body));
