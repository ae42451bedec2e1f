import path from "node:path";
import { mkdirSync } from "node:fs";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema";

/** A Drizzle database on either driver; transactions are assignable to it too. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DbHandle {
  db: Db;
  driver: "pglite" | "postgres";
  /**
   * LISTEN on a channel; returns the function that stops listening. Payloads
   * are sent with `select pg_notify(channel, payload)` inside the writing
   * transaction, so they arrive only after commit. On PostgreSQL every
   * process sharing the database hears them; PGlite is one process.
   */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export const migrationsFolder = path.join(process.cwd(), "db", "migrations");

/**
 * Opens the database and applies the committed migrations.
 * With a URL: PostgreSQL through postgres.js. Without: embedded PGlite in
 * `dataDir` (or in memory when dataDir is "memory://"). One process must own a
 * PGlite data directory: it takes no lock of its own.
 */
export async function openDatabase(opts: { url?: string; dataDir?: string; max?: number }): Promise<DbHandle> {
  if (opts.url) {
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const { migrate } = await import("drizzle-orm/postgres-js/migrator");
    const sql = postgres(opts.url, { max: opts.max ?? 10, onnotice: () => {} });
    const db = drizzle(sql, { schema });
    await migrate(db, { migrationsFolder });
    return {
      db: db as unknown as Db,
      driver: "postgres",
      listen: async (channel, onPayload) => {
        const { unlisten } = await sql.listen(channel, (p) => onPayload(p));
        return unlisten;
      },
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const { migrate } = await import("drizzle-orm/pglite/migrator");
  // pg_trgm indexes free text in the decision log (migration 0008); without it free text scans.
  const { pg_trgm } = await import("@electric-sql/pglite/contrib/pg_trgm");
  const pgliteOptions = { extensions: { pg_trgm } };
  const dataDir = opts.dataDir ?? ".data";
  let client: InstanceType<typeof PGlite>;
  if (dataDir.startsWith("memory://")) {
    client = new PGlite(dataDir, pgliteOptions);
  } else {
    const dir = path.resolve(dataDir, "pglite");
    mkdirSync(dir, { recursive: true });
    client = new PGlite(dir, pgliteOptions);
  }
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  return {
    db: db as unknown as Db,
    driver: "pglite",
    listen: async (channel, onPayload) => client.listen(channel, onPayload),
    close: () => client.close(),
  };
}
