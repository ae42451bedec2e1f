import { api } from "@/lib/http/api";
import { cedarCheckInput, checkPolicy } from "@/lib/policy/service";

// POST /api/v1/admin/policies/check - validate Cedar or a rule for the editor: issues at their line, formatted text
export const POST = api({ body: cedarCheckInput }, ({ ctx, body }) => checkPolicy(ctx, body));
