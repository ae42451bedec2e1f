/**
 * Applies the committed migrations and exits: `npm run db:migrate`.
 * DATABASE_URL for PostgreSQL, else the embedded PGlite in MANDATE_DATA_DIR
 * (stop the app first: one process owns a PGlite data directory).
 */
import { openDatabase } from "./client";

const started = performance.now();
const handle = await openDatabase({ url: process.env.DATABASE_URL, dataDir: process.env.MANDATE_DATA_DIR ?? ".data", max: 1 });
await handle.close();
console.log(`[db] migrations applied (${handle.driver}) in ${Math.round(performance.now() - started)} ms`);
