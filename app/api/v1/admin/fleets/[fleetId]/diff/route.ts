import { z } from "zod";
import { diffRevisions } from "@/lib/bundles/service";
import { api } from "@/lib/http/api";

const query = z.object({ from: z.coerce.number().int().min(1), to: z.coerce.number().int().min(1) });

// GET /api/v1/admin/fleets/{fleetId}/diff - what changed between two revisions (policies, mappings, tools, servers)
export const GET = api({ query }, ({ ctx, params, query }) => diffRevisions(ctx, params.fleetId!, query.from, query.to));
