import { z } from "zod";
import { api } from "@/lib/http/api";
import { createPolicy, listPolicies, policyInput } from "@/lib/policy/service";

const query = z.object({ tenantId: z.string().optional(), serverId: z.string().optional() });

// GET /api/v1/admin/policies - policies of the tenants the caller reads
export const GET = api({ query }, ({ ctx, query }) => listPolicies(ctx, query));

// POST /api/v1/admin/policies - create a rule or Cedar policy (validated against the server's schema)
export const POST = api({ body: policyInput, status: 201 }, ({ ctx, body }) => createPolicy(ctx, body));
