import { z } from "zod";
import { api } from "@/lib/http/api";
import { getFinding } from "@/lib/findings/service";

const query = z.object({ tenantId: z.string().max(100).optional() });

// GET /api/v1/admin/findings/{findingId} - one finding with its evidence and remedies
export const GET = api({ query }, ({ ctx, params, query: q }) => getFinding(ctx, params.findingId!, q.tenantId));
