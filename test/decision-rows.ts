/**
 * Decision rows for the audit tests: UUIDv7 ids at chosen instants, inserted
 * straight into the partitioned table (partitions created first).
 */
import { randomBytes } from "node:crypto";
import { decisions, type NewDecision } from "@/db/schema";
import type { Db } from "@/db/client";
import { ensurePartitions } from "@/lib/decisions/partitions";

/** A UUIDv7 whose time is `ms` (as agents make them). */
export function idAt(ms: number): string {
  const r = randomBytes(10).toString("hex");
  const variant = (8 + (randomBytes(1)[0]! % 4)).toString(16);
  const hex = ms.toString(16).padStart(12, "0") + "7" + r.slice(0, 3) + variant + r.slice(3, 18);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export type RowSpec = Partial<Omit<NewDecision, "id" | "at">> & { atMs: number; serverId: string; fleetId: string };

/** Inserts decisions (in chunks) and returns them as stored. */
export async function insertDecisions(db: Db, specs: RowSpec[]): Promise<NewDecision[]> {
  await ensurePartitions(
    db,
    specs.map((s) => s.atMs),
  );
  const rows: NewDecision[] = specs.map(({ atMs, ...s }) => ({
    agentId: "agt_test",
    method: "tools/call",
    outcome: "allow",
    ...s,
    id: idAt(atMs),
    at: new Date(atMs),
  }));
  for (let i = 0; i < rows.length; i += 1000) await db.insert(decisions).values(rows.slice(i, i + 1000));
  return rows;
}
