import "server-only";
import type { SQL } from "drizzle-orm";
import { z } from "zod";
import type { Decision } from "@/db/schema";
import type { Actor } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { AppError } from "@/lib/errors";
import { emptyNames, refsOfRows, resolveNames, type Names } from "./names";
import { decisionFilter, fetchPage, filterConditions, windowOf, type DecisionFilter, type Keyset } from "./query";

// ---------------------------------------------------------------- generic helpers (decisions and the admin trail)

/** Rows per keyset chunk: memory stays flat whatever the export's size. */
export const EXPORT_CHUNK = 1000;
/** An export stops after this many rows, with a note saying so. */
export const EXPORT_MAX_ROWS = 1_000_000;

/**
 * One CSV cell (RFC 4180): quoted when it holds a quote, comma, CR or LF,
 * quotes doubled. A cell starting with = + - @ (or tab / CR) gets a leading
 * apostrophe so a spreadsheet shows it as text instead of running a formula.
 */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  let s = typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : v instanceof Date ? v.toISOString() : JSON.stringify(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV record with its CRLF. */
export const csvLine = (cells: unknown[]) => `${cells.map(csvCell).join(",")}\r\n`;

export type ExportFormat = "csv" | "ndjson";

export const exportFormat = z.enum(["csv", "ndjson"]).default("csv").describe("csv (RFC 4180, formulas neutralised) or ndjson (one JSON object a line)");
const flag = z
  .enum(["0", "1", "true", "false"])
  .optional()
  .transform((v) => v === "1" || v === "true");

export interface StreamSource<T> {
  /** The next chunk after `after` (null: from the start); fewer than `limit` rows means the end. */
  page(after: T | null, limit: number): Promise<T[]>;
  csvHeader: string[];
  csvRow(row: T): unknown[];
  json(row: T): unknown;
}

export interface FollowOptions<T> {
  /** Rows newer than the last one written (null: none written yet), oldest first. */
  newer(last: T | null): Promise<T[]>;
  pollMs?: number;
  heartbeatMs?: number;
  /** Re-checks the caller now and then (a revoked token ends the stream). */
  recheck?: () => Promise<boolean>;
  recheckMs?: number;
  /** The request's signal: a client gone ends the polling even if the stream is not cancelled. */
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A pull-based stream over keyset chunks: each read fetches one chunk, so a
 * slow reader slows the queries instead of filling memory. Ends after
 * `maxRows` with a trailing note. With `follow`, after the backlog it polls
 * for newer rows and writes a heartbeat newline when idle.
 */
export function keysetStream<T>(src: StreamSource<T>, format: ExportFormat, opts: { maxRows?: number; chunk?: number; follow?: FollowOptions<T> } = {}): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  const maxRows = opts.maxRows ?? EXPORT_MAX_ROWS;
  const chunk = opts.chunk ?? EXPORT_CHUNK;
  const follow = opts.follow;
  let last: T | null = null;
  let written = 0;
  let phase: "start" | "backlog" | "follow" | "done" = "start";
  let cancelled = false;
  let lastWrite = Date.now();
  let lastCheck = Date.now();
  const encode = (rows: T[]) => rows.map((r) => (format === "csv" ? csvLine(src.csvRow(r)) : `${JSON.stringify(src.json(r))}\n`)).join("");
  return new ReadableStream<Uint8Array>(
    {
      // Each pull ends having written something or closed the stream: a pull
      // that returns empty-handed would leave the reader waiting forever.
      async pull(controller) {
        const emit = (text: string) => {
          controller.enqueue(enc.encode(text));
          lastWrite = Date.now();
        };
        const finish = () => {
          phase = "done";
          controller.close();
        };
        if (phase === "start") {
          phase = "backlog";
          if (format === "csv") return emit(csvLine(src.csvHeader));
        }
        if (phase === "backlog") {
          const room = Math.min(chunk, maxRows - written);
          const rows = room > 0 ? await src.page(last, room) : [];
          if (rows.length) {
            last = rows[rows.length - 1]!;
            written += rows.length;
          }
          let text = rows.length ? encode(rows) : "";
          if (rows.length === room && written >= maxRows) {
            const note = `export truncated after ${maxRows} rows: narrow the filter (time range) to get the rest`;
            text += format === "csv" ? csvLine([`# ${note}`]) : `${JSON.stringify({ note, truncated: true })}\n`;
            phase = "done";
          } else if (rows.length < room) {
            phase = follow ? "follow" : "done";
          }
          if (text) emit(text);
          if (phase === "done") return controller.close();
          if (text) return;
        }
        if (phase !== "follow" || !follow) return finish();
        const pollMs = follow.pollMs ?? 1000;
        const heartbeatMs = follow.heartbeatMs ?? 15_000;
        for (;;) {
          if (cancelled) return;
          if (follow.signal?.aborted) return finish();
          if (follow.recheck && Date.now() - lastCheck >= (follow.recheckMs ?? 60_000)) {
            lastCheck = Date.now();
            if (!(await follow.recheck())) return finish();
          }
          const rows = await follow.newer(last);
          if (cancelled) return;
          if (rows.length) {
            last = rows[rows.length - 1]!;
            return emit(encode(rows));
          }
          if (Date.now() - lastWrite >= heartbeatMs) return emit("\n");
          await sleep(pollMs);
        }
      },
      cancel() {
        cancelled = true;
      },
    },
    { highWaterMark: 1 },
  );
}

/** `decisions-20261127-1405.csv` */
export const exportFilename = (what: string, format: ExportFormat, now = new Date()) => `${what}-${now.toISOString().slice(0, 16).replace(/[-:]/g, "").replace("T", "-")}.${format}`;

/** The HTTP answer for an export stream: an attachment, never cached. */
export function exportResponse(stream: ReadableStream<Uint8Array>, format: ExportFormat, filename: string): Response {
  return new Response(stream, {
    status: 200,
    headers: {
      "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8",
      "content-disposition": `attachment; filename="${filename}"`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      // Proxies must not buffer a followed stream.
      "x-accel-buffering": "no",
    },
  });
}

// ---------------------------------------------------------------- decisions

export const decisionExportQuery = decisionFilter.extend({
  format: exportFormat,
  follow: flag.describe("1: after the backlog (oldest first), keep the stream open and write new rows as they arrive (NDJSON only)"),
});
export type DecisionExportQuery = z.infer<typeof decisionExportQuery>;

const CSV_HEADER = [
  "id",
  "at",
  "outcome",
  "tenant_id",
  "server_id",
  "tool",
  "method",
  "user",
  "client",
  "scopes",
  "reason",
  "determining",
  "bundle_revision",
  "fleet_id",
  "agent_id",
  "latency_us",
  "args",
  "groups",
  "actors",
  "token_iss",
  "ip",
  "masked",
  "tenant_name",
  "server_name",
  "fleet_name",
  "agent_name",
  "policy_names",
  "latency_ms",
];

/** One decision as exported (NDJSON): every stored field, arguments as the agent masked them. */
export function exportRecord(d: Decision) {
  return {
    id: d.id,
    at: d.at.toISOString(),
    outcome: d.outcome,
    tenantId: d.tenantId,
    serverId: d.serverId,
    tool: d.tool,
    method: d.method,
    user: d.userId,
    client: d.clientId,
    scopes: d.scopes,
    reason: d.reason,
    determining: d.determining,
    bundleRevision: d.bundleRevision,
    fleetId: d.fleetId,
    agentId: d.agentId,
    latencyUs: d.latencyUs,
    args: d.args,
    context: d.context,
  };
}

/** The CSV row; the trailing name columns come from the chunk's names (empty when the viewer may not read them). */
const csvRecord = (d: Decision, n: Names = emptyNames()): unknown[] => [
  d.id,
  d.at.toISOString(),
  d.outcome,
  d.tenantId,
  d.serverId,
  d.tool,
  d.method,
  d.userId,
  d.clientId,
  (d.scopes ?? []).join(" "),
  d.reason,
  (d.determining ?? []).join(" "),
  d.bundleRevision,
  d.fleetId,
  d.agentId,
  d.latencyUs,
  d.args === null ? "" : JSON.stringify(d.args),
  (d.context?.groups ?? []).join(" "),
  (d.context?.actors ?? []).join(" "),
  d.context?.token?.iss,
  d.context?.ip,
  (d.context?.masked ?? []).join(" "),
  d.tenantId ? n.tenant[d.tenantId] : "",
  n.server[d.serverId],
  n.fleet[d.fleetId],
  n.agent[d.agentId],
  (d.determining ?? []).map((p) => n.policy[p] ?? p).join(" | "),
  d.latencyUs === null ? "" : (d.latencyUs / 1000).toFixed(1),
];

/**
 * Streams the decisions of a filter as CSV or NDJSON, under the same tenant
 * scoping as the search (checked before the first byte, so a forbidden
 * tenant is a plain 404). Newest first; with `follow`, oldest first and then
 * live. `reauth` resolves the caller again for long follows: a revoked token
 * or a lost membership ends or narrows the stream.
 */
export function exportDecisions(
  ctx: Ctx,
  q: DecisionExportQuery,
  opts: { reauth?: () => Promise<Actor>; signal?: AbortSignal; maxRows?: number; chunk?: number; pollMs?: number; heartbeatMs?: number; recheckMs?: number } = {},
): { stream: ReadableStream<Uint8Array>; filename: string; format: ExportFormat } {
  const format = q.format ?? "csv";
  if (q.follow && format !== "ndjson") throw new AppError("validation_failed", "follow needs format=ndjson", [{ path: "follow", message: "only NDJSON can be followed" }]);
  // Fix the start now, so a follow's window does not slide.
  const w = windowOf(q, q.follow);
  const filter: DecisionFilter = { ...q, from: w.from.toISOString() };
  let conds: SQL[] | null = filterConditions(ctx, filter, { openEnded: q.follow });
  const key = (d: Decision): Keyset => ({ at: d.at, id: d.id });
  const dir = q.follow ? "asc" : "desc";
  // CSV rows carry names: one bounded, tenant-scoped lookup per chunk (see lib/decisions/names.ts).
  let names: Names = emptyNames();
  const withNames = async (rows: Decision[]) => {
    if (format === "csv" && rows.length) names = await resolveNames(ctx, refsOfRows(rows));
    return rows;
  };
  const src: StreamSource<Decision> = {
    page: (after, limit) => (conds ? fetchPage(ctx, conds, after && key(after), dir, limit).then(withNames) : Promise.resolve([])),
    csvHeader: CSV_HEADER,
    csvRow: (d) => csvRecord(d, names),
    json: exportRecord,
  };
  const follow: FollowOptions<Decision> | undefined = q.follow
    ? {
        newer: async (last) => (conds ? fetchPage(ctx, conds, last ? key(last) : null, "asc", opts.chunk ?? EXPORT_CHUNK) : []),
        pollMs: opts.pollMs,
        heartbeatMs: opts.heartbeatMs,
        recheckMs: opts.recheckMs,
        signal: opts.signal,
        recheck: opts.reauth
          ? async () => {
              try {
                conds = filterConditions({ db: ctx.db, actor: await opts.reauth!() }, filter, { openEnded: true });
                return conds !== null;
              } catch {
                return false;
              }
            }
          : undefined,
      }
    : undefined;
  return { stream: keysetStream(src, format, { maxRows: q.follow ? Number.MAX_SAFE_INTEGER : opts.maxRows, chunk: opts.chunk, follow }), filename: exportFilename("decisions", format), format };
}
