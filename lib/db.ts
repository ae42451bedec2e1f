import "server-only";
import { openDatabase, type DbHandle } from "@/db/client";
import { getEnv } from "@/lib/env";

// One handle per process, kept on globalThis so dev-mode reloads reuse it
// (two PGlite instances on one data directory would corrupt it).
const g = globalThis as unknown as { __mandateDb?: Promise<DbHandle> };

/** The process-wide database, opened and migrated on first use. */
export function getDbHandle(): Promise<DbHandle> {
  if (!g.__mandateDb) {
    const env = getEnv();
    g.__mandateDb = openDatabase({ url: env.DATABASE_URL, dataDir: env.MANDATE_DATA_DIR }).catch((err: unknown) => {
      g.__mandateDb = undefined;
      throw err;
    });
  }
  return g.__mandateDb;
}

export async function getDb() {
  return (await getDbHandle()).db;
}
