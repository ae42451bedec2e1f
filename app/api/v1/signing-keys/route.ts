import { publicKeys } from "@/lib/bundles/signing";
import { getDb } from "@/lib/db";

// GET /api/v1/signing-keys - the public keys (JWKS) bundles are signed with, for agents to pin (public)
export async function GET() {
  const keys = await publicKeys(await getDb());
  return Response.json({ keys: Object.values(keys) }, { headers: { "cache-control": "no-store" } });
}
