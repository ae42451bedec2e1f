import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { createEntry, createEntryInput, listEntries, listEntriesQuery } from "@/lib/vault/service";

// GET /api/v1/admin/vault - vault entries the caller can read, by server and tenant (metadata only, never secrets)
export const GET = api({ query: listEntriesQuery }, ({ ctx, query }) => listEntries(ctx, query));

// POST /api/v1/admin/vault - create an upstream credential; the secret is write-only
export const POST = api({ body: createEntryInput, status: 201 }, ({ ctx, body }) => createEntry(ctx, body, getEnv().kek));
