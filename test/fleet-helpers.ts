/**
 * Helpers for the fleet, agent and long-poll tests: servers to put in fleets,
 * and a stand-in for the lead's bundle publish (same rows, same notification).
 */
import { createHash, randomBytes } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { bundles, fleets } from "@/db/schema";
import { BUNDLE_CHANNEL } from "@/lib/bundles/service";
import type { Ctx } from "@/lib/context";
import { newId } from "@/lib/ids";
import { createServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { uniq } from "./db";

export async function makeServer(ctx: Ctx, tenantId: string, sharedWith: string[] = []) {
  return createServer(
    ctx,
    createServerInput.parse({
      tenantId,
      tenantIds: sharedWith,
      name: uniq("Server "),
      resourceUri: `https://${uniq("mcp-")}.example.com/mcp`,
      upstreamUrl: "https://upstream.example/mcp",
    }),
  );
}

/**
 * Publishes revision `revision` of a fleet the way the control plane does:
 * bundle row, fleets.active_revision and pg_notify in ONE transaction (so the
 * notification is delivered only after commit). `notify: false` skips the
 * notification, to test the waiter's re-check.
 */
export async function publishBundle(db: Db, fleetId: string, revision: number, opts: { notify?: boolean } = {}) {
  const content = { manifest: { fleetId, revision }, nonce: randomBytes(8).toString("hex") };
  const sha256 = createHash("sha256").update(JSON.stringify(content)).digest("hex");
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(bundles)
      .values({ id: newId("bundle"), fleetId, revision, parentRevision: revision > 1 ? revision - 1 : null, sha256, content, signature: `sig.${revision}`, keyId: "kid-test", createdBy: "test" })
      .returning();
    await tx.update(fleets).set({ activeRevision: revision }).where(eq(fleets.id, fleetId));
    if (opts.notify !== false) await tx.execute(sql`select pg_notify(${BUNDLE_CHANNEL}, ${`${fleetId}:${revision}`})`);
    return row!;
  });
}

/** A bare notification, with no data change (to show waiters ignore what does not concern them). */
export async function notifyOnly(db: Db, payload: string) {
  await db.execute(sql`select pg_notify(${BUNDLE_CHANNEL}, ${payload})`);
}
