import { and, eq, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { compileConversions, fleetServers } from "@/db/schema";
import { conversionsOf, type ConversionStore, type RegistrySnapshot } from "./compile";

/** A stored value longer than this is not kept (converted afresh instead); policy texts are bounded well below. */
const MAX_VALUE = 200_000;
/** Rows written per statement (3 parameters each, under PostgreSQL's 65,535). */
const CHUNK = 1_000;

/** A conversion store read from the database that remembers which keys a compile used and what it added. */
export interface TrackedStore extends ConversionStore {
  used: Set<string>;
  added: Map<string, string>;
  /** Keys held before the compile. */
  held: number;
  /** Keys held before the compile that it did not use. */
  unused(): string[];
}

/**
 * Switch: `MANDATE_COMPILE_STORE=0` turns the stored conversions off (every compile of a process
 * starts from Cedar again; the bench's "before").
 */
export const conversionStoreEnabled = () => process.env.MANDATE_COMPILE_STORE !== "0";

/** A fleet's stored conversions (lib/bundles/compile.ts `ConversionStore`). */
export async function loadConversions(db: Db, fleetId: string): Promise<TrackedStore> {
  const rows = await db.select({ key: compileConversions.key, value: compileConversions.value }).from(compileConversions).where(eq(compileConversions.fleetId, fleetId));
  const held = new Map(rows.map((r) => [r.key, r.value]));
  const used = new Set<string>();
  const added = new Map<string, string>();
  return {
    used,
    added,
    held: held.size,
    unused: () => [...held.keys()].filter((k) => !used.has(k)),
    get(key) {
      const v = held.get(key) ?? added.get(key);
      if (v !== undefined) used.add(key);
      return v;
    },
    set(key, value) {
      if (value.length > MAX_VALUE) return;
      used.add(key);
      if (held.get(key) !== value) added.set(key, value);
    },
  };
}

/**
 * Keeps exactly the conversions this compile used: new ones are added, the ones it read in and did
 * not use are dropped (the table holds one fleet's current set, bounded by its policies). Rows
 * written since the compile read the set (a policy saved meanwhile, `storePolicyConversions`) are
 * not its to judge and stay. A failure here costs the next process a slower first compile, never a
 * wrong one: it does not fail the compile.
 */
export async function saveConversions(db: Db, fleetId: string, store: TrackedStore): Promise<void> {
  const stale = store.unused();
  if (store.added.size === 0 && stale.length === 0) return;
  try {
    // In its own transaction, or a savepoint inside the caller's: a failure here never aborts the caller's transaction.
    await db.transaction(async (tx) => {
      await insertRows(tx, fleetId, store.added);
      // One parameter for the whole list of keys dropped, however many there are.
      if (stale.length)
        await tx
          .delete(compileConversions)
          .where(and(eq(compileConversions.fleetId, fleetId), sql`${compileConversions.key} = any (select jsonb_array_elements_text(${JSON.stringify(stale)}::jsonb))`));
    });
  } catch (err) {
    console.warn(`compile conversions of fleet ${fleetId} not stored: ${(err as Error).message}`);
  }
}

async function insertRows(db: Db, fleetId: string, entries: Map<string, string>) {
  const rows = [...entries].filter(([, value]) => value.length <= MAX_VALUE).map(([key, value]) => ({ fleetId, key, value }));
  for (let i = 0; i < rows.length; i += CHUNK)
    await db
      .insert(compileConversions)
      .values(rows.slice(i, i + CHUNK))
      .onConflictDoNothing();
}

/**
 * Stores, when a policy is saved, the conversions the next compile of every fleet serving its
 * server will look up for it (lib/bundles/compile.ts `conversionsOf`): the first compile of a fleet
 * then finds them instead of converting each policy of the registry. `server` is the server as the
 * save read it (its catalogue, tenants and scope mappings); if it changes before the compile, the
 * keys no longer match and the compile converts afresh. A failure here never fails the save.
 */
export async function storePolicyConversions(db: Db, server: RegistrySnapshot["servers"][number], policy: RegistrySnapshot["policies"][number]): Promise<void> {
  if (!conversionStoreEnabled() || !policy.enabled || policy.serverId !== server.id) return;
  try {
    // A savepoint when the save runs inside a caller's transaction: a failure here never aborts it.
    await db.transaction(async (tx) => {
      const fleetIds = (await tx.select({ id: fleetServers.fleetId }).from(fleetServers).where(eq(fleetServers.serverId, server.id))).map((r) => r.id);
      if (!fleetIds.length) return;
      const entries = conversionsOf(server, policy);
      for (const fleetId of fleetIds) await insertRows(tx, fleetId, entries);
    });
  } catch (err) {
    console.warn(`compile conversions of policy ${policy.id} not stored: ${(err as Error).message}`);
  }
}
