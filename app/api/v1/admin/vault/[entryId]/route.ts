import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { getEntry, updateEntry, updateEntryInput } from "@/lib/vault/service";

// GET /api/v1/admin/vault/{entryId} - one entry with its versions (fingerprints, never secrets)
export const GET = api({}, ({ ctx, params }) => getEntry(ctx, params.entryId!));

// PATCH /api/v1/admin/vault/{entryId} - rename, notes, owner, rotation interval, placement
export const PATCH = api({ body: updateEntryInput }, ({ ctx, params, body }) => updateEntry(ctx, params.entryId!, body, getEnv().kek));
