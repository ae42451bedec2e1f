import { api } from "@/lib/http/api";
import { importGrants, importGrantsInput } from "@/lib/grants/service";

// POST /api/v1/admin/grants/import - import grants exported by an authorization server (all or nothing)
export const POST = api({ body: importGrantsInput }, ({ ctx, body }) => importGrants(ctx, body));
