import { deleteView } from "@/lib/decisions/views";
import { api } from "@/lib/http/api";

// DELETE /api/v1/admin/decisions/views/{viewId} - delete one of the caller's saved views
export const DELETE = api({}, ({ ctx, params }) => deleteView(ctx, params.viewId!));
