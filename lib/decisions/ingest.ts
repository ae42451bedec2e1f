import "server-only";
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { eq, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { decisionQuarantine, fleetServers, serverTenants, servers, type Agent } from "@/db/schema";
import { pgErrorCode } from "@/lib/db-errors";
import { argsJsonText, clampText, DECISION_LIMITS, decisionContext, decisionLine, fastDecisionLine, type DecisionContext, type DecisionLine } from "@/lib/enforcement/decision-record";
import { AppError } from "@/lib/errors";
import { learnFromDecisions, type LearnRow } from "@/lib/grants/learn";
import { newId } from "@/lib/ids";
import { ensurePartitions, retentionCutoff } from "./partitions";
import { getRetentionDays } from "./retention";

// The line's contract and every bound live in lib/enforcement/decision-record.ts (the agent writes with it).
export { decisionContext, decisionLine, type DecisionLine };
export const MAX_ARGS_BYTES = DECISION_LIMITS.argsBytes;
export const MAX_BATCH_ROWS = 10_000;
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** A quarantined line keeps at most this much of its text (UTF-16 units), and its problem this much. */
export const MAX_QUARANTINE_RAW = 4096;
const MAX_PROBLEM = 1000;
export const MAX_FUTURE_MS = 5 * 60_000;
// Rows per INSERT statement: one round trip each.
export const CHUNK_ROWS = 5_000;
// A batch of 2,000 rows or more is stored as two transactions on two connections at once: one
// PostgreSQL backend is the bottleneck of a lone shipper (index maintenance), and this host has 2 cores.
export const PARTS = 2;
export const MIN_PART_ROWS = 1_000;

/** The instant inside a UUIDv7 (its first 48 bits, milliseconds since the epoch). */
export const uuidv7Time = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

/** Decodes the body: NDJSON, optionally gzip (Content-Encoding: gzip), capped before and after inflating. */
export function decodeBatch(raw: Buffer, contentEncoding: string | null): string {
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

/**
 * The validated lines of a batch, column by column: what the insert sends,
 * filled in one pass from the parsed lines (no object per row kept across the
 * awaits). `line` is the line's index in the batch (its text, for the
 * quarantine if the database refuses it); `args` is the arguments' JSON text.
 */
class Columns {
  line: number[] = [];
  id: string[] = [];
  at: number[] = [];
  bundleRevision: (number | null)[] = [];
  tenantId: (string | null)[] = [];
  serverId: string[] = [];
  method: string[] = [];
  tool: (string | null)[] = [];
  user: (string | null)[] = [];
  client: (string | null)[] = [];
  scopes: string[][] = [];
  outcome: string[] = [];
  reason: string[] = [];
  determining: string[][] = [];
  args: (string | null)[] = [];
  context: (DecisionContext | null)[] = [];
  latencyUs: (number | null)[] = [];

  get length() {
    return this.id.length;
  }

  push(line: number, at: number, d: DecisionLine, argsJson: string | null) {
    this.line.push(line);
    this.id.push(d.id);
    this.at.push(at);
    this.bundleRevision.push(d.bundleRevision);
    this.tenantId.push(d.tenantId);
    this.serverId.push(d.serverId);
    this.method.push(d.method);
    this.tool.push(d.tool);
    this.user.push(d.user);
    this.client.push(d.client);
    this.scopes.push(d.scopes);
    this.outcome.push(d.outcome);
    this.reason.push(d.reason);
    this.determining.push(d.determining);
    this.args.push(argsJson);
    this.context.push(d.context);
    this.latencyUs.push(d.latencyUs);
  }
}

/** Rows [from, to) of the batch's columns. */
interface Span {
  cols: Columns;
  from: number;
  to: number;
}

/** A line that cannot be stored, and why. */
export interface Bad {
  text: string;
  problem: string;
  decisionId: string | null;
}

/** How many rows an insert stored, and their ids unless it stored every row it was given. */
interface Stored {
  n: number;
  ids: string[] | null;
}

/**
 * Inserts a span and says which rows it newly stored (what the grant learner
 * may count): in the common case all of them, answered as one count instead
 * of an id per row. The plain columns travel as one array parameter
 * each (unnest); the four JSON columns as one JSON array text each
 * (jsonb_array_elements), which Node builds by joining texts it already has,
 * without quoting every JSON text into an array literal. ROWS FROM zips them
 * row by row. The statement is the same on PGlite.
 */
async function insertSpan(db: Db, agent: Pick<Agent, "id" | "fleetId">, { cols, from, to }: Span): Promise<Stored> {
  const col = <T>(xs: T[]) => sql.param(xs.slice(from, to));
  const json = (xs: unknown[]) => JSON.stringify(xs.slice(from, to));
  const args = cols.args.slice(from, to);
  for (let i = 0; i < args.length; i++) if (args[i] === null) args[i] = "null";
  const result = (await db.execute(sql`
    with ins as (insert into decisions (id, at, agent_id, fleet_id, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, scopes, outcome, reason, determining, args, context, latency_us)
    select t.id, to_timestamp(t.at_ms::float8 / 1000), ${agent.id}, ${agent.fleetId}, t.bundle_revision, t.tenant_id, t.server_id, t.method, t.tool, t.user_id, t.client_id,
      t.scopes, t.outcome, t.reason, t.determining, nullif(t.args, 'null'::jsonb), nullif(t.context, 'null'::jsonb), t.latency_us
    from rows from (unnest(${col(cols.id)}::text[]), unnest(${col(cols.at)}::int8[]), unnest(${col(cols.bundleRevision)}::int4[]),
      unnest(${col(cols.tenantId)}::text[]), unnest(${col(cols.serverId)}::text[]), unnest(${col(cols.method)}::text[]), unnest(${col(cols.tool)}::text[]),
      unnest(${col(cols.user)}::text[]), unnest(${col(cols.client)}::text[]), unnest(${col(cols.outcome)}::text[]), unnest(${col(cols.reason)}::text[]),
      unnest(${col(cols.latencyUs)}::int4[]), jsonb_array_elements(${json(cols.scopes)}::jsonb), jsonb_array_elements(${json(cols.determining)}::jsonb),
      jsonb_array_elements(${`[${args.join(",")}]`}::jsonb), jsonb_array_elements(${json(cols.context)}::jsonb))
      as t(id, at_ms, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, outcome, reason, latency_us, scopes, determining, args, context)
    on conflict do nothing
    returning id)
    select count(*)::int as n, case when count(*) = ${to - from} then null else array_agg(id) end as ids from ins`)) as unknown as { rows?: Stored[] } | Stored[];
  return (Array.isArray(result) ? result : (result.rows ?? []))[0]!;
}

/** The (server, tenant) pairs a fleet serves: its servers, each with its owning tenant and the tenants it is shared with. */
export async function servedPairs(db: Db, fleetId: string): Promise<Map<string, Set<string>>> {
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

/** The decision id of a line's JSON, for its quarantine row (null when it has none). */
export const idOf = (json: unknown) => {
  const id = json && typeof json === "object" && !Array.isArray(json) ? (json as { id?: unknown }).id : undefined;
  return typeof id === "string" ? id.slice(0, DECISION_LIMITS.id) : null;
};

/**
 * Sorts every line of a batch into rows to store (as columns) and lines to
 * quarantine, each with its problem. A line is stored only when it parses
 * against the decision record, its time is within retention and not in the
 * future, and its (server, tenant) pair is one the agent's fleet serves: the
 * tenant is checked against the fleet's servers and their tenants, never
 * taken on trust.
 */
function validate(lines: string[], served: Map<string, Set<string>>, now: number, oldest: number, retentionDays: number, zodOnly: boolean): { cols: Columns; bad: Bad[] } {
  const cols = new Columns();
  const bad: Bad[] = [];
  const out = { argsJson: null as string | null };
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      bad.push({ text, problem: "not valid JSON", decisionId: null });
      continue;
    }
    // The common line is checked without zod (same bounds, never more lenient); anything else goes to zod.
    let d = zodOnly ? null : fastDecisionLine(json, out);
    let argsJson = out.argsJson;
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
      argsJson = d.args === null ? null : (argsJsonText.get(d.args) ?? JSON.stringify(d.args));
    }
    const at = uuidv7Time(d.id);
    let problem: string | null = null;
    if (at > now + MAX_FUTURE_MS) problem = "id: the id's time is in the future";
    // Its day's partition is (or will be) dropped by retention: storing it would recreate it.
    else if (at < oldest) problem = `id: the decision is older than the ${retentionDays}-day retention; it cannot be stored`;
    else if (!served.has(d.serverId)) problem = "serverId: this agent's fleet does not serve that server";
    // A decision without a tenant (denied before one was known) writes into no tenant.
    else if (d.tenantId !== null && !served.get(d.serverId)!.has(d.tenantId)) problem = "tenantId: that server does not serve this tenant for this agent's fleet";
    if (problem === null) cols.push(i, at, d, argsJson);
    else bad.push({ text, problem, decisionId: d.id });
  }
  return { cols, bad };
}

/** Stores a span in one transaction, chunk by chunk, and learns grants from the newly stored rows. Returns how many were new. */
async function storePart(db: Db, agent: Pick<Agent, "id" | "fleetId">, { cols, from, to }: Span): Promise<number> {
  let inserted = 0;
  await db.transaction(async (tx) => {
    for (let a = from; a < to; a += CHUNK_ROWS) {
      const b = Math.min(to, a + CHUNK_ROWS);
      const { n, ids } = await insertSpan(tx, agent, { cols, from: a, to: b });
      inserted += n;
      if (n === 0) continue;
      // null: every row was new. Else delete(): a line repeated inside the batch was stored once, so it is learned once.
      const fresh = ids === null ? null : new Set(ids);
      const learn: LearnRow[] = [];
      for (let i = a; i < b; i++) {
        if (fresh !== null && !fresh.delete(cols.id[i]!)) continue;
        learn.push({ tenantId: cols.tenantId[i]!, serverId: cols.serverId[i]!, userId: cols.user[i]!, clientId: cols.client[i]!, scopes: cols.scopes[i]!, at: cols.at[i]!, outcome: cols.outcome[i]! });
      }
      await learnFromDecisions(tx, learn);
    }
  });
  return inserted;
}

// Data exceptions (22xxx) and program limits (54xxx): what a row's content can make PostgreSQL refuse.
export const isContentError = (err: unknown) => /^(22|54)/.test(pgErrorCode(err) ?? "");

/**
 * Stores a span; if PostgreSQL refuses its content (a case the schema did not
 * foresee), stores each half again on its own, down to single rows, and
 * quarantines the rows it refuses, so one row can never keep the others out
 * (nor make the agent resend forever): k refused rows among n cost about
 * 2k·log2(n) transactions, not n.
 */
async function storeOrIsolate(db: Db, agent: Pick<Agent, "id" | "fleetId">, span: Span, lines: string[]): Promise<{ inserted: number; refused: Bad[] }> {
  try {
    return { inserted: await storePart(db, agent, span), refused: [] };
  } catch (err) {
    if (!isContentError(err)) throw err;
    const { cols, from, to } = span;
    if (to - from === 1) return { inserted: 0, refused: [{ text: lines[cols.line[from]!]!, problem: `the database refused it (SQLSTATE ${pgErrorCode(err)})`, decisionId: cols.id[from]! }] };
  }
  const mid = (span.from + span.to) >>> 1;
  const a = await storeOrIsolate(db, agent, { ...span, to: mid }, lines);
  const b = await storeOrIsolate(db, agent, { ...span, from: mid }, lines);
  return { inserted: a.inserted + b.inserted, refused: [...a.refused, ...b.refused] };
}

/** Sets bad lines aside; a line already quarantined for this agent (a resent batch) is kept once. */
export async function quarantine(db: Db, agent: Pick<Agent, "id" | "fleetId">, bad: Bad[]): Promise<void> {
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
  const { cols, bad } = validate(lines, served, now, retentionCutoff(retentionDays, now), retentionDays, opts.zodOnly ?? false);
  const n = cols.length;

  let inserted = 0;
  let refused = 0;
  if (n) {
    await ensurePartitions(db, cols.at);
    const parts = Math.max(1, Math.min(opts.parts ?? PARTS, Math.floor(n / MIN_PART_ROWS)));
    const size = Math.ceil(n / parts);
    const stored = await Promise.all(Array.from({ length: parts }, (_, p) => storeOrIsolate(db, agent, { cols, from: p * size, to: Math.min(n, (p + 1) * size) }, lines)));
    for (const s of stored) {
      inserted += s.inserted;
      refused += s.refused.length;
      bad.push(...s.refused);
    }
  }
  if (bad.length) await quarantine(db, agent, bad);
  return { accepted: inserted, duplicates: n - refused - inserted, quarantined: bad.length };
}
