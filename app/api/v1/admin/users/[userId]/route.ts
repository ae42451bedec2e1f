import { updateUser, updateUserInput } from "@/lib/auth/users";
import { api } from "@/lib/http/api";

// PATCH /api/v1/admin/users/{userId} - rename, change global role, disable (owners)
export const PATCH = api({ body: updateUserInput }, ({ ctx, params, body }) => updateUser(ctx, params.userId!, body));
