import { listViews, savedViewInput, saveView } from "@/lib/decisions/views";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/decisions/views - the caller's saved views of the decision log
export const GET = api({}, ({ ctx }) => listViews(ctx));

// POST /api/v1/admin/decisions/views - save a view (a name and a filter query string); the same name replaces it
export const POST = api({ body: savedViewInput, status: 201 }, ({ ctx, body }) => saveView(ctx, body));
