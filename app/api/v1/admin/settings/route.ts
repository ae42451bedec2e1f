import { getSettings, settingsInput, updateSettings } from "@/lib/decisions/retention";
import { api } from "@/lib/http/api";

// GET /api/v1/admin/settings - the instance settings (owners and global auditors)
export const GET = api({}, async ({ ctx }) => getSettings(ctx));

// PATCH /api/v1/admin/settings - change the instance settings, e.g. decision retention (owners)
export const PATCH = api({ body: settingsInput }, async ({ ctx, body }) => updateSettings(ctx, body));
