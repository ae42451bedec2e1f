import { rotateSigningKey } from "@/lib/bundles/signing";
import { getEnv } from "@/lib/env";
import { forbidden } from "@/lib/errors";
import { api } from "@/lib/http/api";
import { recordEvent } from "@/lib/trail/record";

// POST /api/v1/admin/signing-keys/rotate - make a new Ed25519 bundle-signing key active (owners)
export const POST = api({ status: 201 }, async ({ ctx }) => {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only owners rotate signing keys");
  return ctx.db.transaction(async (tx) => {
    const key = await rotateSigningKey(tx, getEnv().kek);
    await recordEvent(tx, ctx.actor, { action: "signing_key.rotate", targetType: "signing_key", targetId: key.kid, tenantId: null, after: { kid: key.kid } });
    return { kid: key.kid, publicJwk: key.publicJwk };
  });
});
