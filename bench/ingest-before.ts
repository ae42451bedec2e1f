/**
 * The ingest path as it was before the column insert (lib/decisions/ingest.ts at d67ef4c: an object per
 * row, 16 quoted text[] parameters, row-by-row isolation; what did not change is imported), kept for bench/ingest.ts to run side by side
 * with the current one (BEFORE=1). Not used by the control plane. `POST` is the route handler of
 * app/api/v1/agent/decisions with this path inside (same wrapper, decoding and answer).
 */
import { sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import type { Agent } from "@/db/schema";
import { pgErrorCode } from "@/lib/db-errors";
import { CHUNK_ROWS, decodeBatch, idOf, isContentError, MAX_BATCH_BYTES, MAX_BATCH_ROWS, MAX_FUTURE_MS, MIN_PART_ROWS, PARTS, quarantine, servedPairs, type Bad } from "@/lib/decisions/ingest";
import { argsJsonText, decisionLine, fastDecisionLine, type DecisionLine } from "@/lib/enforcement/decision-record";
import { AppError } from "@/lib/errors";
import { learnFromDecisions } from "@/lib/grants/learn";
import { ensurePartitions, retentionCutoff } from "@/lib/decisions/partitions";
import { getRetentionDays } from "@/lib/decisions/retention";
import { agentApi } from "@/lib/http/agent-api";
import { readRawBody } from "@/lib/http/body";

/** The instant inside a UUIDv7 (its first 48 bits, milliseconds since the epoch). */
const uuidv7Time = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

/** A validated decision, ready to store. */
interface Row {
  id: string;
  at: number;
  line: DecisionLine;
  /** The line as sent, for the quarantine if the database refuses it. */
  text: string;
}

const jsonOrNull = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/**
 * Inserts one chunk and returns the ids it newly stored (RETURNING: what the
 * grant learner may count). Each column travels as ONE text[] parameter
 * expanded by unnest: measured, PostgreSQL spends ~10% less CPU per row than
 * on one jsonb_to_recordset document (Node a little more), which keeps work
 * off the shared database; the statement is the same on PGlite.
 */
async function insertChunk(db: Db, agent: Pick<Agent, "id" | "fleetId">, rows: Row[]): Promise<string[]> {
  const col = (f: (r: Row) => string | number | null) => sql.param(rows.map(f));
  const result = (await db.execute(sql`
    insert into decisions (id, at, agent_id, fleet_id, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, scopes, outcome, reason, determining, args, context, latency_us)
    select id, at::timestamptz, ${agent.id}, ${agent.fleetId}, bundle_revision::int4, tenant_id, server_id, method, tool, user_id, client_id,
      scopes::jsonb, outcome, reason, determining::jsonb, args::jsonb, context::jsonb, latency_us::int4
    from unnest(${col((r) => r.id)}::text[], ${col((r) => new Date(r.at).toISOString())}::text[], ${col((r) => r.line.bundleRevision)}::text[],
      ${col((r) => r.line.tenantId)}::text[], ${col((r) => r.line.serverId)}::text[], ${col((r) => r.line.method)}::text[], ${col((r) => r.line.tool)}::text[],
      ${col((r) => r.line.user)}::text[], ${col((r) => r.line.client)}::text[], ${col((r) => JSON.stringify(r.line.scopes))}::text[], ${col((r) => r.line.outcome)}::text[],
      ${col((r) => r.line.reason)}::text[], ${col((r) => JSON.stringify(r.line.determining))}::text[], ${col((r) => (r.line.args === null ? null : (argsJsonText.get(r.line.args) ?? JSON.stringify(r.line.args))))}::text[],
      ${col((r) => jsonOrNull(r.line.context))}::text[], ${col((r) => r.line.latencyUs)}::text[])
      as t(id, at, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, scopes, outcome, reason, determining, args, context, latency_us)
    on conflict do nothing
    returning id`)) as unknown as { rows?: { id: string }[] } | { id: string }[];
  return (Array.isArray(result) ? result : (result.rows ?? [])).map((r) => r.id);
}

/**
 * Sorts every line of a batch into rows to store and lines to quarantine,
 * each with its problem. A line is stored only when it parses against the
 * decision record, its time is within retention and not in the future, and
 * its (server, tenant) pair is one the agent's fleet serves: the tenant is
 * checked against the fleet's servers and their tenants, never taken on trust.
 */
function validate(lines: string[], served: Map<string, Set<string>>, now: number, oldest: number, retentionDays: number, zodOnly: boolean): { rows: Row[]; bad: Bad[] } {
  const rows: Row[] = [];
  const bad: Bad[] = [];
  for (const text of lines) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      bad.push({ text, problem: "not valid JSON", decisionId: null });
      continue;
    }
    // The common line is checked without zod (same bounds, never more lenient); anything else goes to zod.
    let d = zodOnly ? null : fastDecisionLine(json);
    if (d === null) {
      const p = decisionLine.safeParse(json);
      if (!p.success) {
        const problem = p.error.issues
          .slice(0, 5)
          .map((x) => `${x.path.length ? x.path.join(".") : "line"}: ${x.message}`)
          .join("; ");
        bad.push({ text, problem, decisionId: idOf(json) });
        continue;
      }
      d = p.data;
    }
    const at = uuidv7Time(d.id);
    const quarantine = (problem: string) => bad.push({ text, problem, decisionId: d.id });
    if (at > now + MAX_FUTURE_MS) quarantine("id: the id's time is in the future");
    // Its day's partition is (or will be) dropped by retention: storing it would recreate it.
    else if (at < oldest) quarantine(`id: the decision is older than the ${retentionDays}-day retention; it cannot be stored`);
    else if (!served.has(d.serverId)) quarantine("serverId: this agent's fleet does not serve that server");
    // A decision without a tenant (denied before one was known) writes into no tenant.
    else if (d.tenantId !== null && !served.get(d.serverId)!.has(d.tenantId)) quarantine("tenantId: that server does not serve this tenant for this agent's fleet");
    else rows.push({ id: d.id, at, line: d, text });
  }
  return { rows, bad };
}

/** Stores rows in one transaction, chunk by chunk, and learns grants from the newly stored ones. Returns how many were new. */
async function storePart(db: Db, agent: Pick<Agent, "id" | "fleetId">, rows: Row[]): Promise<number> {
  let inserted = 0;
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += CHUNK_ROWS) {
      const chunk = rows.slice(i, i + CHUNK_ROWS);
      const fresh = new Set(await insertChunk(tx, agent, chunk));
      inserted += fresh.size;
      if (fresh.size === 0) continue;
      await learnFromDecisions(
        tx,
        chunk
          // delete(): a line repeated inside the batch was stored once, so it is learned once.
          .filter((r) => fresh.delete(r.id))
          .map((r) => ({ tenantId: r.line.tenantId, serverId: r.line.serverId, userId: r.line.user, clientId: r.line.client, scopes: r.line.scopes, at: new Date(r.at), outcome: r.line.outcome })),
      );
    }
  });
  return inserted;
}

// Data exceptions (22xxx) and program limits (54xxx): what a row's content can make PostgreSQL refuse.
/**
 * Stores a part; if PostgreSQL refuses its content (a case the schema did not
 * foresee), stores it again row by row and quarantines the rows it refuses,
 * so one row can never keep the others out (nor make the agent resend forever).
 */
async function storeOrIsolate(db: Db, agent: Pick<Agent, "id" | "fleetId">, rows: Row[]): Promise<{ inserted: number; refused: Bad[] }> {
  try {
    return { inserted: await storePart(db, agent, rows), refused: [] };
  } catch (err) {
    if (!isContentError(err)) throw err;
  }
  let inserted = 0;
  const refused: Bad[] = [];
  for (const r of rows) {
    try {
      inserted += await storePart(db, agent, [r]);
    } catch (err) {
      if (!isContentError(err)) throw err;
      refused.push({ text: r.text, problem: `the database refused it (SQLSTATE ${pgErrorCode(err)})`, decisionId: r.id });
    }
  }
  return { inserted, refused };
}

/**
 * Stores a batch of decisions for one agent, line by line: the good lines are
 * stored, each bad one is quarantined with its problem (never stored, never
 * blocking the others), and the answer counts both. Content never fails a
 * batch; only the transport (size, encoding) does. Idempotent: a retried
 * batch (or line) inserts nothing twice and quarantines nothing twice.
 * Acknowledged (returns) only after every part committed; if a part fails the
 * call throws, the agent resends, and the committed part comes back as
 * duplicates. The newly stored decisions (never duplicates) feed the grant
 * learner in their part's transaction, so a resend cannot count a call twice.
 */
export async function ingestDecisions(db: Db, agent: Pick<Agent, "id" | "fleetId">, ndjson: string, now = Date.now(), opts: { parts?: number; zodOnly?: boolean } = {}) {
  const lines = ndjson.split("\n").filter((l) => /\S/.test(l));
  if (lines.length === 0) return { accepted: 0, duplicates: 0, quarantined: 0 };
  if (lines.length > MAX_BATCH_ROWS) throw new AppError("payload_too_large", `At most ${MAX_BATCH_ROWS} decisions per batch`);
  const [served, retentionDays] = await Promise.all([servedPairs(db, agent.fleetId), getRetentionDays(db)]);
  const { rows, bad } = validate(lines, served, now, retentionCutoff(retentionDays, now), retentionDays, opts.zodOnly ?? false);

  let inserted = 0;
  let refused = 0;
  if (rows.length) {
    await ensurePartitions(
      db,
      rows.map((r) => r.at),
    );
    const parts = Math.max(1, Math.min(opts.parts ?? PARTS, Math.floor(rows.length / MIN_PART_ROWS)));
    const size = Math.ceil(rows.length / parts);
    const stored = await Promise.all(Array.from({ length: parts }, (_, p) => storeOrIsolate(db, agent, rows.slice(p * size, (p + 1) * size))));
    for (const s of stored) {
      inserted += s.inserted;
      refused += s.refused.length;
      bad.push(...s.refused);
    }
  }
  if (bad.length) await quarantine(db, agent, bad);
  return { accepted: inserted, duplicates: rows.length - refused - inserted, quarantined: bad.length };
}

// POST /api/v1/agent/decisions as before (bench only)
export const POST = agentApi({}, async ({ db, agent, req }) => {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/(x-ndjson|jsonl|ndjson)\b/.test(type)) throw new AppError("unsupported_media_type", "Send decisions as application/x-ndjson");
  const raw = await readRawBody(req, MAX_BATCH_BYTES);
  return ingestDecisions(db, agent, decodeBatch(raw, req.headers.get("content-encoding")));
});
