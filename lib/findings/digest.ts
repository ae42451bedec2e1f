import "server-only";
import { and, eq, gt, inArray, isNull, lt, or } from "drizzle-orm";
import type { Db } from "@/db/client";
import { findingMarks, findingSettings, tenants } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import { runIfDue, startJob } from "@/lib/jobs/scheduler";
import { egressFetch, type EgressPolicy } from "@/lib/net/egress";
import { computeFindings, type Finding } from "./compute";
import { can } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { forbidden } from "@/lib/errors";
import type { z } from "zod";
import { authorizeSettings, loadSettings, openWebhook, recordScores, type settingsQuery } from "./service";
import { FINDINGS_JOB_EVERY_MS, GLOBAL_SCOPE, readFresh, storeResults } from "./store";

const DAY = 86_400_000;
export const DIGEST_EVERY_MS = 7 * DAY;
/** Findings listed by name in one digest; the rest are counted. */
const DIGEST_LIST_MAX = 50;
const JOB_NAME = "findings";
const JOB_EVERY_MS = FINDINGS_JOB_EVERY_MS;

/** Slack's three control characters in message text (`<…|…>` links, mentions): https://api.slack.com/reference/surfaces/formatting#escaping */
export const slackEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** The e-mail-ready text and the Slack-compatible payload of a digest of new findings. */
export function buildDigest(scope: { name: string }, fresh: Finding[], all: number, baseUrl = "") {
  const lines = [`Least privilege digest for ${scope.name}: ${fresh.length} new finding${fresh.length === 1 ? "" : "s"} (${all} open).`, ""];
  const byKind = new Map<string, number>();
  for (const f of fresh) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  for (const [k, n] of [...byKind].sort()) lines.push(`  ${k.replace(/_/g, " ")}: ${n}`);
  if (fresh.length) lines.push("");
  for (const f of fresh.slice(0, DIGEST_LIST_MAX)) lines.push(`- [${f.severity}] ${f.title}${f.subject.serverName ? ` (${f.subject.serverName})` : ""}`);
  if (fresh.length > DIGEST_LIST_MAX) lines.push(`- … and ${fresh.length - DIGEST_LIST_MAX} more`);
  lines.push("", `Review and remedy: ${baseUrl}/least-privilege`);
  const text = lines.join("\n");
  // Names in findings come from tokens and upstreams: escaped as Slack asks, so none becomes a link or a mention.
  return { text, webhook: { text: slackEscape(text) } };
}

async function postWebhook(url: string, payload: unknown, egress: EgressPolicy): Promise<{ ok: boolean; status?: number; error?: string }> {
  try {
    const res = await egressFetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(payload) }, { policy: egress, timeoutMs: 10_000, maxBytes: 64 * 1024 });
    await res.body?.cancel().catch(() => undefined);
    return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    // EgressError messages name the host and the failure, never the URL's path or query (where a webhook's secret is).
    return { ok: false, error: err instanceof Error && err.name === "EgressError" ? err.message : "the request failed" };
  }
}

export interface JobOptions {
  keyring: readonly Kek[];
  egress: EgressPolicy;
  now?: Date;
  baseUrl?: string;
  /** Receives each digest (the e-mail text), for a mailer or a test. */
  onDigest?: (d: { scope: string; text: string; fresh: number; webhook?: { ok: boolean; status?: number; error?: string } }) => void | Promise<void>;
}

type Work = Awaited<ReturnType<typeof collectFindings>>;

/**
 * The findings job's work, inside the scheduler's transaction: computes
 * every tenant's findings (and the fleet-wide ones) and stores them, one row
 * per scope, for the page and the API to read while fresh (store.ts); for
 * the active tenants, records when each finding was first seen and today's
 * privilege scores, and claims each scope whose last digest is a week old (a
 * conditional update, so no two runs claim the same digest). Sending
 * happens after the commit (sendDigests).
 */
export async function collectFindings(tx: Db, opts: JobOptions) {
  const now = opts.now ?? new Date();
  const allRows = await tx.select({ id: tenants.id, name: tenants.name, status: tenants.status }).from(tenants);
  const tenantRows = allRows.filter((t) => t.status === "active");
  const active = new Set(tenantRows.map((t) => t.id));
  const settings = await loadSettings(tx, [...allRows.map((t) => t.id), "global"]);
  // Every tenant, as the list shows every tenant an owner reads; marks, scores and digests stay the active tenants'.
  const all = await computeFindings(tx, { tenantIds: allRows.map((t) => t.id), global: true, settings, now });
  const stored = await storeResults(tx, all, { tenantIds: allRows.map((t) => t.id), global: true }, settings, now, "job");
  if (stored.oversized.length) console.error(`[findings] not stored (over the size bound; read live): ${stored.oversized.join(", ")}`);
  const r = { ...all, findings: all.findings.filter((f) => f.tenantId === null || active.has(f.tenantId)), scores: all.scores.filter((s) => active.has(s.tenantId)) };
  for (const f of r.findings) {
    await tx
      .insert(findingMarks)
      .values({ key: f.id, tenantId: f.tenantId, kind: f.kind, firstSeenAt: now, lastSeenAt: now })
      .onConflictDoUpdate({ target: findingMarks.key, set: { lastSeenAt: now } });
  }
  await recordScores(tx, r.scores, settings, now);
  const due: { id: string; tenantId: string | null; name: string; previous: Date | null; webhookUrl: string | null }[] = [];
  for (const scope of [...tenantRows.map((t) => ({ id: t.id, tenantId: t.id as string | null, name: t.name })), { id: "global", tenantId: null, name: "all fleets" }]) {
    await tx.insert(findingSettings).values({ id: scope.id, tenantId: scope.tenantId }).onConflictDoNothing();
    const [prev] = await tx.select().from(findingSettings).where(eq(findingSettings.id, scope.id));
    const claimed = await tx
      .update(findingSettings)
      .set({ lastDigestAt: now })
      .where(and(eq(findingSettings.id, scope.id), or(isNull(findingSettings.lastDigestAt), lt(findingSettings.lastDigestAt, new Date(now.getTime() - DIGEST_EVERY_MS + 60_000)))))
      .returning({ id: findingSettings.id });
    if (!claimed.length) continue;
    let webhookUrl: string | null = null;
    try {
      webhookUrl = prev ? openWebhook(opts.keyring, prev) : null;
    } catch {
      console.error(`[findings] digest webhook of ${scope.id} cannot be opened with the keyring`);
    }
    due.push({ ...scope, previous: prev?.lastDigestAt ?? null, webhookUrl });
  }
  return { findings: r.findings, scores: r.scores, due, tookMs: r.tookMs };
}

/** Sends the digests a run claimed (after its commit: a slow webhook holds no lock or transaction). */
export async function sendDigests(db: Db, work: Work, opts: JobOptions) {
  const sent: { scope: string; fresh: number; webhook?: { ok: boolean; status?: number; error?: string } }[] = [];
  for (const d of work.due) {
    const open = work.findings.filter((f) => f.tenantId === d.tenantId);
    const marks = open.length
      ? await db
          .select({ key: findingMarks.key })
          .from(findingMarks)
          .where(
            and(
              inArray(
                findingMarks.key,
                open.map((f) => f.id),
              ),
              d.previous ? gt(findingMarks.firstSeenAt, d.previous) : undefined,
            ),
          )
      : [];
    const freshIds = new Set(marks.map((m) => m.key));
    const fresh = open.filter((f) => freshIds.has(f.id));
    const digest = buildDigest({ name: d.name }, fresh, open.length, opts.baseUrl);
    const webhook = d.webhookUrl && fresh.length ? await postWebhook(d.webhookUrl, digest.webhook, opts.egress) : undefined;
    if (webhook && !webhook.ok) console.error(`[findings] digest webhook of ${d.id} failed: ${webhook.error}`);
    await opts.onDigest?.({ scope: d.id, text: digest.text, fresh: fresh.length, webhook });
    sent.push({ scope: d.id, fresh: fresh.length, webhook });
  }
  return sent;
}

/** The job for the scheduler (lib/jobs/scheduler.ts): once per interval across replicas, under its advisory lock. */
export const findingsJob = (opts: JobOptions, everyMs = JOB_EVERY_MS) => ({ name: JOB_NAME, everyMs, run: (tx: Db) => collectFindings(tx, opts) });

/**
 * Runs the findings job now if it is due and no other replica holds it, then
 * sends the digests it claimed. Returns null when it did not run (busy or not due).
 */
export async function runFindingsJob(db: Db, opts: JobOptions) {
  const r = await runIfDue(db, findingsJob(opts), { now: (opts.now ?? new Date()).getTime() });
  if (r.status === "failed") throw new Error(`findings job failed: ${r.error}`);
  if (r.status !== "ran") return null;
  const digests = await sendDigests(db, r.result, opts);
  return { findings: r.result.findings.length, scores: r.result.scores, digests, tookMs: r.result.tookMs };
}

/** Reads (and parses) the stored results once in this process after a run, so the first view after it does not pay for it. */
export async function warmStore(db: Db) {
  const scopes = [...(await db.select({ id: tenants.id }).from(tenants)).map((t) => t.id), GLOBAL_SCOPE];
  await readFresh(db, scopes, await loadSettings(db, scopes));
}

/** How often each control-plane process checks whether the hourly job is due (across replicas it runs once an hour). */
export const FINDINGS_TICK_MS = 5 * 60_000;

/**
 * Starts the hourly findings job in this process (one run per interval across replicas); stop with the returned
 * function. Each process checks every `FINDINGS_TICK_MS` (and a few seconds after it starts): the replica that finds
 * the job due runs it; every other replica reads the stored results it wrote into its own parsed copy (`warmStore`),
 * so no replica's first view after a run pays for reading and parsing megabytes of findings, and a freshly started
 * process does not wait an hour for the first stored result.
 */
export function startFindingsJob(db: Db, opts: Omit<JobOptions, "now">, everyMs = JOB_EVERY_MS, tickMs = Math.min(FINDINGS_TICK_MS, everyMs)): () => void {
  const warm = () => warmStore(db).catch((err) => console.error(`[findings] reading the stored results failed: ${err instanceof Error ? err.message.split("\n", 1)[0] : "error"}`));
  return startJob(
    db,
    findingsJob(opts, everyMs),
    (r) => {
      if (r.status === "failed") return;
      if (r.status === "ran") sendDigests(db, r.result, opts).catch((err) => console.error(`[findings] digest failed: ${err instanceof Error ? err.message.split("\n", 1)[0] : "error"}`));
      void warm();
    },
    tickMs,
    { firstTickMs: Math.min(10_000, tickMs) },
  );
}

/** The digest a scope would get now (findings first seen since its last digest), without sending it. */
export async function previewDigest(db: Db, scope: { id: string; tenantId: string | null; name: string }, findings: Finding[]) {
  const [s] = await db.select().from(findingSettings).where(eq(findingSettings.id, scope.id));
  const open = findings.filter((f) => f.tenantId === scope.tenantId);
  const marks = open.length
    ? await db
        .select({ key: findingMarks.key, first: findingMarks.firstSeenAt })
        .from(findingMarks)
        .where(
          inArray(
            findingMarks.key,
            open.map((f) => f.id),
          ),
        )
    : [];
  const first = new Map(marks.map((m) => [m.key, m.first]));
  // Not yet marked by the job counts as new.
  const fresh = open.filter((f) => !s?.lastDigestAt || !first.has(f.id) || first.get(f.id)! > s.lastDigestAt);
  return { ...buildDigest({ name: scope.name }, fresh, open.length), fresh: fresh.length, open: open.length, lastDigestAt: s?.lastDigestAt?.toISOString() ?? null, webhook: s?.webhookHint ?? null };
}

/** The weekly digest of a tenant (or, for owners and global auditors, of the fleet-wide findings) as it would be sent now. */
export async function digestPreview(ctx: Ctx, q: z.infer<typeof settingsQuery>) {
  const { id, tenantId } = await authorizeSettings(ctx, q.tenantId, false);
  if (tenantId && !can(ctx.actor, "decisions.read", tenantId)) throw forbidden();
  const [t] = tenantId ? await ctx.db.select({ name: tenants.name }).from(tenants).where(eq(tenants.id, tenantId)) : [{ name: "all fleets" }];
  const settings = await loadSettings(ctx.db, [id]);
  const r = await computeFindings(ctx.db, { tenantIds: tenantId ? [tenantId] : [], global: !tenantId, settings });
  return previewDigest(ctx.db, { id, tenantId, name: t?.name ?? id }, r.findings);
}
