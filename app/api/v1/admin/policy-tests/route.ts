import { z } from "zod";
import { api } from "@/lib/http/api";
import { createTest, listTests, policyTestInput } from "@/lib/policy/service";

const query = z.object({ tenantId: z.string().optional(), serverId: z.string().optional() });

// GET /api/v1/admin/policy-tests - policy tests of the tenants the caller reads
export const GET = api({ query }, ({ ctx, query }) => listTests(ctx, query));

// POST /api/v1/admin/policy-tests - add a test: a request and the decision it must get
export const POST = api({ body: policyTestInput, status: 201 }, ({ ctx, body }) => createTest(ctx, body));
