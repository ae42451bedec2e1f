import { eq, inArray } from "drizzle-orm";
import type { Db } from "@/db/client";
import { toolVersions, tools } from "@/db/schema";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { LIST_FIELD } from "@/lib/enforcement/catalogue-entry";
import { driftedAgainst, driftKey, type LiveState } from "@/lib/enforcement/decide";
import { loadLiveSections, withLive } from "./live";

/**
 * The live state the control plane decides with, so the simulator and impact
 * replay answer as an agent would (lib/enforcement/decide.ts): the live
 * sections (revocations, client approval) read fresh from the database, and
 * drift as the catalogue knows it (a tool whose latest version differs from
 * the version the bundle approved).
 */

/** `driftKey(serverId, kind, name)` (`serverId/tool` for tools) → hash of the entry's latest known version, for these servers. */
export async function latestToolHashes(db: Db, serverIds: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!serverIds.length) return out;
  const rows = await db
    .select({ serverId: tools.serverId, kind: tools.kind, name: tools.name, hash: toolVersions.hash })
    .from(tools)
    .innerJoin(toolVersions, eq(toolVersions.id, tools.latestVersionId))
    .where(inArray(tools.serverId, serverIds));
  for (const r of rows) out.set(driftKey(r.serverId, LIST_FIELD[r.kind], r.name), r.hash);
  return out;
}

/** Bundle content with its live sections as they stand now, and the drift the catalogue knows of. */
export async function decisionInputs(db: Db, content: BundleContent): Promise<{ content: BundleContent; live: LiveState }> {
  const serverIds = content.servers.map((s) => s.id);
  const [sections, latest] = await Promise.all([loadLiveSections(db, serverIds), latestToolHashes(db, serverIds)]);
  const fresh = withLive(content, sections);
  return { content: fresh, live: { drifted: driftedAgainst(fresh, latest) } };
}
