import { changeOwnPassword, changePasswordInput } from "@/lib/auth/users";
import { api } from "@/lib/http/api";

// POST /api/v1/admin/me/password - change your own password (ends every session)
export const POST = api({ body: changePasswordInput }, async ({ ctx, body }) => {
  await changeOwnPassword(ctx, body);
  return undefined;
});
