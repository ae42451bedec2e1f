import { getEnv } from "@/lib/env";
import { api } from "@/lib/http/api";
import { getSettings, putSettings, settingsInput, settingsQuery } from "@/lib/findings/service";

// GET /api/v1/admin/findings/settings - the unused window, the small-share threshold and the digest webhook's host
export const GET = api({ query: settingsQuery }, ({ ctx, query }) => getSettings(ctx, query));

// PUT /api/v1/admin/findings/settings - change them (the webhook URL is sealed and never returned)
export const PUT = api({ query: settingsQuery, body: settingsInput }, ({ ctx, query, body }) => putSettings(ctx, query, body, getEnv().kek));
