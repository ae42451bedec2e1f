import { api } from "@/lib/http/api";
import { digestPreview } from "@/lib/findings/digest";
import { settingsQuery } from "@/lib/findings/service";

// GET /api/v1/admin/findings/digest - the weekly digest as it would be sent now (e-mail text and webhook JSON), without sending it
export const GET = api({ query: settingsQuery }, ({ ctx, query }) => digestPreview(ctx, query));
