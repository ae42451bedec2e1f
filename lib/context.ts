import type { Db } from "@/db/client";
import type { Actor } from "@/lib/auth/permissions";

/** What every domain call receives: its database (or transaction) and who acts. */
export interface Ctx {
  db: Db;
  actor: Actor;
}
