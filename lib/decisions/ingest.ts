import { gunzipSync } from "node:zlib";
import { inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { fleetServers, type Agent, type NewDecision } from "@/db/schema";
import { AppError, type FieldIssue } from "@/lib/errors";
import { ensurePartitions } from "./partitions";

export const MAX_BATCH_ROWS = 10_000;
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;
const MAX_FUTURE_MS = 5 * 60_000;

const uuidv7 = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "must be a UUIDv7");
const short = (max: number) => z.string().max(max);

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
    args: z.record(z.string(), z.unknown()).nullable().default(null),
    latencyUs: z.number().int().min(0).max(3_600_000_000).nullable().default(null),
  })
  .strict();

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

// The whole chunk travels as ONE JSON parameter, expanded by jsonb_to_recordset:
// a 5,000-row chunk is one statement with one parameter, on either driver.
const recordType = sql.raw(
  [
    "id text, at timestamptz, agent_id text, fleet_id text, bundle_revision int4, tenant_id text, server_id text, method text, tool text",
    "user_id text, client_id text, scopes jsonb, outcome text, reason text, determining jsonb, args jsonb, latency_us int4",
  ].join(", "),
);
const columnList = sql.raw(
  "id, at, agent_id, fleet_id, bundle_revision, tenant_id, server_id, method, tool, user_id, client_id, scopes, outcome, reason, determining, args, latency_us",
);

async function insertChunk(db: Db, rows: NewDecision[]): Promise<number> {
  const payload = JSON.stringify(
    rows.map((r) => ({
      id: r.id,
      at: (r.at as Date).toISOString(),
      agent_id: r.agentId,
      fleet_id: r.fleetId,
      bundle_revision: r.bundleRevision ?? null,
      tenant_id: r.tenantId ?? null,
      server_id: r.serverId,
      method: r.method,
      tool: r.tool ?? null,
      user_id: r.userId ?? null,
      client_id: r.clientId ?? null,
      scopes: r.scopes ?? [],
      outcome: r.outcome,
      reason: r.reason ?? "",
      determining: r.determining ?? [],
      args: r.args ?? null,
      latency_us: r.latencyUs ?? null,
    })),
  );
  const result = (await db.execute(
    sql`insert into decisions (${columnList}) select ${columnList} from jsonb_to_recordset(${payload}::jsonb) as t(${recordType}) on conflict do nothing`,
  )) as unknown as { count?: number; affectedRows?: number };
  return Number(result.count ?? result.affectedRows ?? 0);
}

/**
 * Stores a batch of decisions for one agent. All or nothing: any invalid line
 * rejects the whole batch with every line's problem, so an agent never has a
 * half-acknowledged batch to reconcile. Idempotent: a retried batch (or line)
 * inserts nothing twice. Acknowledged only after the insert committed.
 */
export async function ingestDecisions(db: Db, agent: Pick<Agent, "id" | "fleetId">, ndjson: string, now = Date.now()) {
  const lines = ndjson.split("\n").filter((l) => l.trim());
  if (lines.length === 0) return { accepted: 0, duplicates: 0 };
  if (lines.length > MAX_BATCH_ROWS) throw new AppError("payload_too_large", `At most ${MAX_BATCH_ROWS} decisions per batch`);
  const served = new Set((await db.select({ id: fleetServers.serverId }).from(fleetServers).where(inArray(fleetServers.fleetId, [agent.fleetId]))).map((r) => r.id));
  const issues: FieldIssue[] = [];
  const rows: NewDecision[] = [];
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
    // The tenant is checked against the fleet's own servers, not taken on trust.
    else if (!served.has(d.serverId)) issues.push({ path: `line ${i + 1}.serverId`, message: "this agent's fleet does not serve that server" });
    else
      rows.push({
        id: d.id,
        at: new Date(at),
        agentId: agent.id,
        fleetId: agent.fleetId,
        bundleRevision: d.bundleRevision,
        tenantId: d.tenantId,
        serverId: d.serverId,
        method: d.method,
        tool: d.tool,
        userId: d.user,
        clientId: d.client,
        scopes: d.scopes,
        outcome: d.outcome,
        reason: d.reason,
        determining: d.determining,
        args: d.args,
        latencyUs: d.latencyUs,
      });
  });
  if (issues.length) throw new AppError("validation_failed", `The batch has ${issues.length} invalid line${issues.length > 1 ? "s" : ""}; nothing was stored`, issues.slice(0, 200));

  await ensurePartitions(db, rows.map((r) => (r.at as Date).getTime()));
  let inserted = 0;
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += 5000) inserted += await insertChunk(tx, rows.slice(i, i + 5000));
  });
  return { accepted: inserted, duplicates: rows.length - inserted };
}

