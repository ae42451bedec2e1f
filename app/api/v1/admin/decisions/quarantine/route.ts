import { quarantineQuery, quarantineSummary } from "@/lib/decisions/quarantine";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions/quarantine - decision lines ingest quarantined: counts per agent and the most recent (owners, global auditors)
export const GET = api({ query: quarantineQuery }, ({ ctx, query }) => quarantineSummary(ctx, query));
