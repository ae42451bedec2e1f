import { api } from "@/lib/http/api";
import { getEnv } from "@/lib/env";
import { rewrapKeys } from "@/lib/vault/service";

// POST /api/v1/admin/vault/rewrap - rewrap data and signing keys sealed with a previous KEK into the active one (owners)
export const POST = api({}, ({ ctx }) => rewrapKeys(ctx, getEnv().keyring));
