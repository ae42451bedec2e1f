/**
 * The ingest path as it was before the column insert (lib/decisions/ingest.ts at d67ef4c: an object per
 * row, 16 quoted text[] parameters, row-by-row isolation), kept for bench/ingest.ts to run side by side
 * with the current one (BEFORE=1). Not used by the control plane. `POST` is the route handler of
 * app/api/v1/agent/decisions with this path inside (same wrapper, decoding and answer).
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { eq, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { decisionQuarantine, fleetServers, serverTenants, servers, type Agent } from "@/db/schema";
import { pgErrorCode } from "@/lib/db-errors";
import { argsJsonText, clampText, DECISION_LIMITS, decisionLine, fastDecisionLine, type DecisionLine } from "@/lib/enforcement/decision-record";
import { AppError } from "@/lib/errors";
import { learnFromDecisions } from "@/lib/grants/learn";
import { newId } from "@/lib/ids";
import { ensurePartitions, retentionCutoff } from "@/lib/decisions/partitions";
import { getRetentionDays } from "@/lib/decisions/retention";
import { agentApi } from "@/lib/http/agent-api";
import { readRawBody } from "@/lib/http/body";

const MAX_BATCH_ROWS = 10_000;
const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** A quarantined line keeps at most this much of its text (UTF-16 units), and its problem this much. */
const MAX_QUARANTINE_RAW = 4096;
const MAX_PROBLEM = 1000;
const MAX_FUTURE_MS = 5 * 60_000;
// Rows per INSERT statement: one round trip each.
const CHUNK_ROWS = 5_000;
// A batch of 2,000 rows or more is stored as two transactions on two connections at once: one
// PostgreSQL backend is the bottleneck of a lone shipper (index maintenance), and this host has 2 cores.
const PARTS = 2;
const MIN_PART_ROWS = 1_000;

/** The instant inside a UUIDv7 (its first 48 bits, milliseconds since the epoch). */
const uuidv7Time = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

/** Decodes the body: NDJSON, optionally gzip (Content-Encoding: gzip), capped before and after inflating. */
function decodeBatch(raw: Buffer, contentEncoding: string | null): string {
  let buf = raw;
  if (contentEncoding === "gzip") {
    try {
      buf = gunzipSync(raw, { maxOutputLength: MAX_BATCH_BYTES });
    } catch {
      throw new AppError("bad_request", `The gzip body is corrupt or inflates past ${MAX_BATCH_BYTES / 1024 / 1024} MiB`);
    }
  } else if (contentEncoding && contentEncoding !== "identity") {
    throw new AppError("unsupported_media_type", "Content-Encoding must be gzip or identity");
  }
  return buf.toString("utf8");
}

/** A validated decision, ready to store. */
interface Row {
  id: string;
  at: number;
  line: DecisionLine;
  /** The line as sent, for the quarantine if the database refuses it. */
  text: string;
}

/** A line that cannot be stored, and why. */
interface Bad {
  text: string;
  problem: string;
  decisionId: string | null;
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

/** The (server, tenant) pairs a fleet serves: its servers, each with its owning tenant and the tenants it is shared with. */
async function servedPairs(db: Db, fleetId: string): Promise<Map<string, Set<string>>> {
  const [owned, shared] = await Promise.all([
    db.select({ serverId: servers.id, tenantId: servers.tenantId }).from(fleetServers).innerJoin(servers, eq(servers.id, fleetServers.serverId)).where(eq(fleetServers.fleetId, fleetId)),
    db
      .select({ serverId: serverTenants.serverId, tenantId: serverTenants.tenantId })
      .from(fleetServers)
      .innerJoin(serverTenants, eq(serverTenants.serverId, fleetServers.serverId))
      .where(eq(fleetServers.fleetId, fleetId)),
  ]);
  const out = new Map<string, Set<string>>();
  for (const r of [...owned, ...shared]) {
    const set = out.get(r.serverId) ?? new Set<string>();
    set.add(r.tenantId);
    out.set(r.serverId, set);
  }
  return out;
}

const idOf = (json: unknown) => {
  const id = json && typeof json === "object" && !Array.isArray(json) ? (json as { id?: unknown }).id : undefined;
  return typeof id === "string" ? id.slice(0, DECISION_LIMITS.id) : null;
};

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
const isContentError = (err: unknown) => /^(22|54)/.test(pgErrorCode(err) ?? "");

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

/** Sets bad lines aside; a line already quarantined for this agent (a resent batch) is kept once. */
async function quarantine(db: Db, agent: Pick<Agent, "id" | "fleetId">, bad: Bad[]): Promise<void> {
  for (let i = 0; i < bad.length; i += 1000) {
    await db
      .insert(decisionQuarantine)
      .values(
        bad.slice(i, i + 1000).map((b) => ({
          id: newId("quarantine"),
          agentId: agent.id,
          fleetId: agent.fleetId,
          decisionId: b.decisionId === null ? null : clampText(b.decisionId, DECISION_LIMITS.id),
          problem: clampText(b.problem, MAX_PROBLEM),
          raw: clampText(b.text, MAX_QUARANTINE_RAW),
          rawBytes: Buffer.byteLength(b.text),
          rawSha256: createHash("sha256").update(b.text).digest("hex"),
        })),
      )
      .onConflictDoNothing();
  }
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
