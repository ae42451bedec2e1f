import "server-only";
import { gunzipSync } from "node:zlib";
import { inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { fleetServers, type Agent } from "@/db/schema";
import { AppError, type FieldIssue } from "@/lib/errors";
import { learnFromDecisions } from "@/lib/grants/learn";
import { ensurePartitions, retentionCutoff } from "./partitions";
import { getRetentionDays } from "./retention";

export const MAX_BATCH_ROWS = 10_000;
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;
/** The largest `args` object a decision may carry, measured as UTF-8 JSON. */
export const MAX_ARGS_BYTES = 16 * 1024;
const MAX_FUTURE_MS = 5 * 60_000;
// Rows per INSERT statement: one round trip each.
const CHUNK_ROWS = 5_000;
// A batch of 2,000 rows or more is stored as two transactions on two connections at once: one
// PostgreSQL backend is the bottleneck of a lone shipper (index maintenance), and this host has 2 cores.
const PARTS = 2;
const MIN_PART_ROWS = 1_000;

const uuidv7 = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "must be a UUIDv7");
const short = (max: number) => z.string().max(max);

// The JSON text the size check made, reused by the insert: one stringify per line.
const argsText = new WeakMap<object, string>();
// Cheap for the common small object: only a long JSON text can pass 16 KiB of UTF-8.
const jsonBytes = (s: string) => (s.length * 3 <= MAX_ARGS_BYTES ? s.length : Buffer.byteLength(s, "utf8"));

/** What the decision saw besides the call; stored in decisions.context. */
export const decisionContext = z
  .object({
    groups: z.array(short(256)).max(100).optional(),
    actors: z.array(short(256)).max(20).optional(),
    token: z.object({ iss: short(2048), iat: z.number().int().min(0), exp: z.number().int().min(0) }).strict().optional(),
    ip: short(64).optional(),
    masked: z.array(short(512)).max(100).optional(),
  })
  .strict();

/** One decision line as agents send it. Agent and fleet come from the authenticated agent, never the line. */
export const decisionLine = z
  .object({
    id: uuidv7,
    bundleRevision: z.number().int().min(0).nullable().default(null),
    tenantId: short(100).nullable().default(null),
    serverId: short(100),
    method: short(100),
    tool: short(128).nullable().default(null),
    user: short(256).nullable().default(null),
    client: short(256).nullable().default(null),
    scopes: z.array(short(128)).max(100).default([]),
    outcome: z.enum(["allow", "deny", "error"]),
    reason: short(500).default(""),
    determining: z.array(short(200)).max(100).default([]),
    args: z
      .record(z.string(), z.unknown())
      .nullable()
      .default(null)
      .refine((a) => {
        if (a === null) return true;
        const text = JSON.stringify(a);
        argsText.set(a, text);
        return jsonBytes(text) <= MAX_ARGS_BYTES;
      }, `args must be at most ${MAX_ARGS_BYTES / 1024} KiB as JSON (mask or trim large arguments in the agent)`),
    context: decisionContext.nullable().default(null),
    latencyUs: z.number().int().min(0).max(3_600_000_000).nullable().default(null),
  })
  .strict();

export type DecisionLine = z.infer<typeof decisionLine>;

/** The instant inside a UUIDv7 (its first 48 bits, milliseconds since the epoch). */
export const uuidv7Time = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

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

/** A validated decision, ready to store. */
interface Row {
  id: string;
  at: number;
  line: DecisionLine;
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
      ${col((r) => r.line.reason)}::text[], ${col((r) => JSON.stringify(r.line.determining))}::text[], ${col((r) => (r.line.args === null ? null : (argsText.get(r.line.args) ?? JSON.stringify(r.line.args))))}::text[],
      ${col((r) => jsonOrNull(r.line.context))}::text[], ${col((r) => r.line.latencyUs)}::text[])
      as t(id, at, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, scopes, outcome, reason, determining, args, context, latency_us)
    on conflict do nothing
    returning id`)) as unknown as { rows?: { id: string }[] } | { id: string }[];
  return (Array.isArray(result) ? result : (result.rows ?? [])).map((r) => r.id);
}

/**
 * Validates every line of a batch (all of them, so the answer names every
 * problem). Throws validation_failed with line-level issues if any is wrong.
 */
function validate(lines: string[], served: Set<string>, now: number, oldest: number, retentionDays: number): Row[] {
  const issues: FieldIssue[] = [];
  const rows: Row[] = [];
  lines.forEach((text, i) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      issues.push({ path: `line ${i + 1}`, message: "not valid JSON" });
      return;
    }
    const p = decisionLine.safeParse(json);
    if (!p.success) {
      issues.push(...p.error.issues.map((x) => ({ path: `line ${i + 1}${x.path.length ? `.${x.path.join(".")}` : ""}`, message: x.message })));
      return;
    }
    const d = p.data;
    const at = uuidv7Time(d.id);
    if (at > now + MAX_FUTURE_MS) issues.push({ path: `line ${i + 1}.id`, message: "the id's time is in the future" });
    // Its day's partition is (or will be) dropped by retention: storing it would recreate it.
    else if (at < oldest) issues.push({ path: `line ${i + 1}.id`, message: `the decision is older than the ${retentionDays}-day retention; it cannot be stored` });
    // The tenant is checked against the fleet's own servers, not taken on trust.
    else if (!served.has(d.serverId)) issues.push({ path: `line ${i + 1}.serverId`, message: "this agent's fleet does not serve that server" });
    else rows.push({ id: d.id, at, line: d });
  });
  if (issues.length) throw new AppError("validation_failed", `The batch has ${issues.length} invalid line${issues.length > 1 ? "s" : ""}; nothing was stored`, issues.slice(0, 200));
  return rows;
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

/**
 * Stores a batch of decisions for one agent. All or nothing for validity: any
 * invalid line rejects the whole batch with every line's problem before
 * anything is written, so an agent never has a half-accepted batch to
 * reconcile. Idempotent: a retried batch (or line) inserts nothing twice.
 * Acknowledged (returns) only after every part committed; if a part fails the
 * call throws, the agent resends, and the committed part comes back as
 * duplicates. The newly stored decisions (never duplicates) feed the grant
 * learner in their part's transaction, so a resend cannot count a call twice.
 */
export async function ingestDecisions(db: Db, agent: Pick<Agent, "id" | "fleetId">, ndjson: string, now = Date.now(), opts: { parts?: number } = {}) {
  const lines = ndjson.split("\n").filter((l) => /\S/.test(l));
  if (lines.length === 0) return { accepted: 0, duplicates: 0 };
  if (lines.length > MAX_BATCH_ROWS) throw new AppError("payload_too_large", `At most ${MAX_BATCH_ROWS} decisions per batch`);
  const [servedRows, retentionDays] = await Promise.all([
    db.select({ id: fleetServers.serverId }).from(fleetServers).where(inArray(fleetServers.fleetId, [agent.fleetId])),
    getRetentionDays(db),
  ]);
  const rows = validate(lines, new Set(servedRows.map((r) => r.id)), now, retentionCutoff(retentionDays, now), retentionDays);

  await ensurePartitions(db, rows.map((r) => r.at));
  const parts = Math.max(1, Math.min(opts.parts ?? PARTS, Math.floor(rows.length / MIN_PART_ROWS)));
  const size = Math.ceil(rows.length / parts);
  const stored = await Promise.all(Array.from({ length: parts }, (_, p) => storePart(db, agent, rows.slice(p * size, (p + 1) * size))));
  const inserted = stored.reduce((a, b) => a + b, 0);
  return { accepted: inserted, duplicates: rows.length - inserted };
}
