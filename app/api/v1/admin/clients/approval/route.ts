import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { clientApprovalInput, setClientApproval } from "@/lib/grants/service";

// PUT /api/v1/admin/clients/approval - require (or not) an admin's approval of each client in a tenant
export const PUT = api({ body: clientApprovalInput }, ({ ctx, body }) => setClientApproval(ctx, body.tenantId, body.requireClientApproval, getEnv().kek));
