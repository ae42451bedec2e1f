import { api } from "@/lib/http/api";
import { simulate, simulateInput } from "@/lib/policy/service";

// POST /api/v1/admin/simulate - decide one request against a draft or a published bundle
export const POST = api({ body: simulateInput }, ({ ctx, body }) => simulate(ctx, body));
