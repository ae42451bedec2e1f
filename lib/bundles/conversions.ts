import { and, eq, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { compileConversions } from "@/db/schema";
import type { ConversionStore } from "./compile";

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
 * Keeps exactly the conversions this compile used: new ones are added, ones it did not use are
 * dropped (the table holds one fleet's current set, bounded by its policies). A failure here costs
 * the next process a slower first compile, never a wrong one: it does not fail the compile.
 */
export async function saveConversions(db: Db, fleetId: string, store: TrackedStore): Promise<void> {
  if (store.added.size === 0 && store.used.size === store.held) return;
  try {
    // In its own transaction, or a savepoint inside the caller's: a failure here never aborts the caller's transaction.
    await db.transaction(async (tx) => {
      const rows = [...store.added].map(([key, value]) => ({ fleetId, key, value }));
      for (let i = 0; i < rows.length; i += CHUNK)
        await tx
          .insert(compileConversions)
          .values(rows.slice(i, i + CHUNK))
          .onConflictDoNothing();
      // One parameter for the whole list of keys kept, however many there are.
      await tx
        .delete(compileConversions)
        .where(and(eq(compileConversions.fleetId, fleetId), sql`not (${compileConversions.key} = any (select jsonb_array_elements_text(${JSON.stringify([...store.used])}::jsonb)))`));
    });
  } catch (err) {
    console.warn(`compile conversions of fleet ${fleetId} not stored: ${(err as Error).message}`);
  }
}
