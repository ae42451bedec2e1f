import "server-only";
import { and, eq, ne } from "drizzle-orm";
import type { Db } from "@/db/client";
import { vaultEntries } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Kek } from "@/lib/bundles/signing";
import { recordEvent } from "@/lib/trail/record";
import { upstreamOrigin } from "./binding";

/*
 * A vault entry is bound to the upstream origin it was stored for (issue 10
 * defect 1, issue 17 item 4). When a server's upstream moves to another
 * origin, every entry of that server (the owning tenant's, shared, and other
 * tenants') is suspended: the broker refuses it and the live bundle marks it,
 * so agents fail closed rather than send it to the new host or call without
 * it, until a user allowed to write that secret re-enters it (rotation) or
 * confirms it for the new origin. Suspension is derived, not stored: an entry
 * is suspended exactly while its bound origin differs from its server's
 * current upstream origin, whatever path changed the upstream.
 */

/**
 * Called by a server update in its transaction: when the upstream origin
 * changed, records one `vault.suspend` trail event per active entry bound to
 * another origin (in the entry's admin tenant) and republishes the live
 * bundles, so agents stop using those secrets with this commit.
 */
export async function suspendForOriginChange(
  tx: Db,
  actor: Actor,
  server: { id: string; name: string; tenantId: string; upstreamUrl: string },
  newUpstreamUrl: string,
  kek: Kek | undefined,
): Promise<number> {
  const from = upstreamOrigin(server.upstreamUrl);
  const to = upstreamOrigin(newUpstreamUrl);
  if (from === to) return 0;
  const entries = await tx
    .select()
    .from(vaultEntries)
    .where(and(eq(vaultEntries.serverId, server.id), eq(vaultEntries.status, "active"), ne(vaultEntries.boundOrigin, to)));
  if (!entries.length) return 0;
  if (!kek) throw new Error("suspendForOriginChange: suspending vault entries republishes live bundles and needs the key-encryption key");
  for (const e of entries) {
    await recordEvent(tx, actor, {
      action: "vault.suspend",
      targetType: "vault_entry",
      targetId: e.id,
      tenantId: e.tenantId ?? server.tenantId,
      before: { boundOrigin: e.boundOrigin, suspended: e.boundOrigin !== from },
      after: { boundOrigin: e.boundOrigin, upstreamOrigin: to, suspended: true, reason: "the server's upstream origin changed" },
    });
  }
  await republishLiveBundles(
    tx,
    actor,
    kek,
    [server.id],
    `server ${server.name}: upstream origin changed from ${from} to ${to}; ${entries.length} vault entr${entries.length === 1 ? "y" : "ies"} suspended`,
  );
  return entries.length;
}
