import "server-only";
import { and, gt, inArray, isNotNull, lt, notInArray, notLike, sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { auditEvents, findingResults } from "@/db/schema";
import { DEFAULT_SETTINGS, type ComputeResult, type Finding, type Score, type TenantSettings } from "./compute";

/*
 * Stored findings (issue 15): the hourly findings job (digest.ts) and the
 * Recompute button store each scope's computed findings, one row of
 * `finding_results` per tenant and one for the owners' fleet-wide findings
 * ("global"), with the time and window settings of the computation. Reads use
 * a stored row instead of computing while it is fresh:
 *
 * - computed less than STORE_MAX_AGE_MS ago (the job's interval and a
 *   quarter), and not in the future;
 * - with the scope's current settings (unusedDays, smallSharePercent);
 * - no admin action of that tenant (fleet-wide: of no tenant) in the trail
 *   since, other than the reads and usage in STALE_IGNORED_ACTIONS: a revoke,
 *   a mapping change, a retired credential make the tenant's next read live,
 *   so a remedy done from the page shows at once;
 * - the stored list is complete (findings not null: the row was not over
 *   MAX_STORED_BYTES).
 *
 * Any other scope is computed live, as before; the merge gives the same list
 * (same order) as one live computation of every scope, since each tenant's
 * findings depend only on its own servers' usage and registry. Usage (new
 * decisions, credential fetches) is seen at the next run or Recompute.
 */

/** How often the findings job runs (lib/findings/digest.ts). */
export const FINDINGS_JOB_EVERY_MS = 3600_000;
/** A stored result older than this is not read (the job's interval, plus slack for a late tick). */
export const STORE_MAX_AGE_MS = FINDINGS_JOB_EVERY_MS + 15 * 60_000;
/** A scope's findings larger than this (JSON) are not stored: readers of that scope compute live. */
export const MAX_STORED_BYTES = 8 * 1024 * 1024;
/** Clock skew tolerated for a computed-at time slightly ahead of this process's clock (another replica). */
const SKEW_MS = 60_000;
/** Trail actions that change no finding at once (reads, tests, usage that the next run counts, these findings' own records). */
export const STALE_IGNORED_ACTIONS = ["vault.resolve", "vault.read", "vault.test_connection", "findings.recompute", "finding.remedy", "token.create", "token.revoke", "decisions.retention"];
const STALE_IGNORED_PREFIXES = ["connection.", "user.", "policy_test.", "masking."];

export const GLOBAL_SCOPE = "global";

export interface StoredScope {
  scope: string;
  tenantId: string | null;
  computedAt: Date;
  findings: Finding[];
  score: Score | null;
  truncated: boolean;
  tookMs: number;
}

/**
 * Stores the result of one computation, one row per scope computed (each
 * tenant of `tenantIds`, and "global" with `global`). A row is replaced only
 * by a newer computation, so a slow run finishing late never overwrites a
 * fresher one.
 */
export async function storeResults(
  db: Db,
  r: ComputeResult,
  scopes: { tenantIds: string[]; global: boolean },
  settings: Map<string, TenantSettings>,
  now: Date,
  computedBy: string,
): Promise<{ stored: number; oversized: string[] }> {
  const rows: (typeof findingResults.$inferInsert)[] = [];
  const oversized: string[] = [];
  const add = (scope: string, tenantId: string | null, findings: Finding[], score: Score | null) => {
    const s = settings.get(scope) ?? DEFAULT_SETTINGS;
    const size = Buffer.byteLength(JSON.stringify(findings));
    if (size > MAX_STORED_BYTES) oversized.push(scope);
    rows.push({
      scope,
      tenantId,
      computedAt: now,
      unusedDays: s.unusedDays,
      smallSharePercent: s.smallSharePercent,
      findings: size > MAX_STORED_BYTES ? null : findings,
      score: score as unknown as Record<string, unknown> | null,
      findingCount: findings.length,
      truncated: r.truncated,
      tookMs: Math.round(r.tookMs),
      computedBy,
    });
  };
  for (const t of scopes.tenantIds)
    add(
      t,
      t,
      r.findings.filter((f) => f.tenantId === t),
      r.scores.find((s) => s.tenantId === t) ?? null,
    );
  if (scopes.global)
    add(
      GLOBAL_SCOPE,
      null,
      r.findings.filter((f) => f.tenantId === null),
      null,
    );
  for (const row of rows) {
    await db
      .insert(findingResults)
      .values(row)
      .onConflictDoUpdate({
        target: findingResults.scope,
        set: {
          tenantId: row.tenantId,
          computedAt: row.computedAt,
          unusedDays: row.unusedDays,
          smallSharePercent: row.smallSharePercent,
          findings: row.findings,
          score: row.score,
          findingCount: row.findingCount,
          truncated: row.truncated,
          tookMs: row.tookMs,
          computedBy: row.computedBy,
        },
        setWhere: lt(findingResults.computedAt, row.computedAt),
      });
  }
  return { stored: rows.length, oversized };
}

/**
 * Parsed stored findings kept in this process, per scope, keyed by the row's
 * computation (computed-at, by whom, how many): a row is only ever replaced
 * by a newer computation, so a key seen again is the same content, and the
 * megabytes of JSON of a large fleet are transferred and parsed once per
 * computation, not on every read. Bounded in findings; the oldest entry
 * goes first. The tenant filter is applied on every read, cached or not.
 */
const CACHE_MAX_FINDINGS = 100_000;
type Cache = Map<string, { key: string; findings: Finding[] }>;
// Per database handle (a process may open more than one), on globalThis so a dev-mode module reload keeps it.
const g = globalThis as unknown as { __mandateFindingsCache?: WeakMap<Db, Cache> };
const caches = (g.__mandateFindingsCache ??= new WeakMap());
const cacheOf = (db: Db): Cache => {
  let c = caches.get(db);
  if (!c) caches.set(db, (c = new Map()));
  return c;
};
/** The columns that name a stored computation (what `cacheKey` is made of), read with its metadata and with its body. */
const computation = {
  scope: findingResults.scope,
  tenantId: findingResults.tenantId,
  computedAt: findingResults.computedAt,
  computedBy: findingResults.computedBy,
  findingCount: findingResults.findingCount,
};
const cacheKey = (r: { computedAt: Date; computedBy: string; findingCount: number; tenantId: string | null }) => `${r.computedAt.getTime()}|${r.computedBy}|${r.findingCount}|${r.tenantId}`;
function remember(cache: Cache, scope: string, key: string, findings: Finding[]) {
  cache.delete(scope);
  if (findings.length > CACHE_MAX_FINDINGS) return;
  cache.set(scope, { key, findings });
  let total = 0;
  for (const v of cache.values()) total += v.findings.length;
  for (const [k, v] of cache) {
    if (total <= CACHE_MAX_FINDINGS) break;
    cache.delete(k);
    total -= v.findings.length;
  }
}

/** The scopes whose stored findings this process holds parsed for this database handle (tests, diagnostics). */
export const heldScopes = (db: Db): string[] => [...cacheOf(db).keys()].sort();

/**
 * The stored results of these scopes (tenant ids, and "global") that are
 * fresh (see the module comment). A scope missing from the answer is to be
 * computed live. The tenant of a row is the row's own: a row whose tenant is
 * not its scope, or a finding of another tenant inside it, is never returned.
 */
export async function readFresh(db: Db, scopes: string[], settings: Map<string, TenantSettings>, now = new Date()): Promise<Map<string, StoredScope>> {
  const out = new Map<string, StoredScope>();
  if (!scopes.length) return out;
  const oldest = new Date(now.getTime() - STORE_MAX_AGE_MS);
  const rows = await db
    .select({
      ...computation,
      unusedDays: findingResults.unusedDays,
      smallSharePercent: findingResults.smallSharePercent,
      score: findingResults.score,
      truncated: findingResults.truncated,
      tookMs: findingResults.tookMs,
    })
    .from(findingResults)
    .where(and(inArray(findingResults.scope, scopes), gt(findingResults.computedAt, oldest), isNotNull(findingResults.findings)));
  const usable = rows.filter((r) => {
    const s = settings.get(r.scope) ?? DEFAULT_SETTINGS;
    const owner = r.scope === GLOBAL_SCOPE ? null : r.scope;
    return r.tenantId === owner && r.computedAt.getTime() <= now.getTime() + SKEW_MS && r.unusedDays === s.unusedDays && (owner === null || r.smallSharePercent === s.smallSharePercent);
  });
  if (!usable.length) return out;
  // Admin actions since the oldest of these computations, newest per tenant (null: not a tenant's).
  const since = new Date(Math.min(...usable.map((r) => r.computedAt.getTime())));
  const changed = await db
    .select({ tenantId: auditEvents.tenantId, last: sql<Date | string>`max(${auditEvents.at})` })
    .from(auditEvents)
    .where(and(gt(auditEvents.at, since), notInArray(auditEvents.action, STALE_IGNORED_ACTIONS), ...STALE_IGNORED_PREFIXES.map((p) => notLike(auditEvents.action, `${p}%`))))
    .groupBy(auditEvents.tenantId);
  const lastChange = new Map(changed.map((c) => [c.tenantId, new Date(c.last)]));
  const fresh = usable.filter((r) => {
    const last = lastChange.get(r.scope === GLOBAL_SCOPE ? null : r.scope);
    return !(last && last >= r.computedAt);
  });
  // The findings themselves: from this process's cache when it holds this very computation, else read once.
  const cache = cacheOf(db);
  const found = new Map<string, Finding[]>();
  const toRead: string[] = [];
  for (const r of fresh) {
    const c = cache.get(r.scope);
    if (c && c.key === cacheKey(r)) found.set(r.scope, c.findings);
    else toRead.push(r.scope);
  }
  if (toRead.length) {
    const bodies = await db
      .select({ ...computation, findings: findingResults.findings })
      .from(findingResults)
      .where(and(inArray(findingResults.scope, toRead), isNotNull(findingResults.findings)));
    for (const b of bodies) {
      const meta = fresh.find((r) => r.scope === b.scope)!;
      // Replaced since the first read: not the computation judged fresh above; that scope is computed live.
      if (cacheKey(b) !== cacheKey(meta)) continue;
      const findings = b.findings as Finding[];
      remember(cache, b.scope, cacheKey(b), findings);
      found.set(b.scope, findings);
    }
  }
  for (const r of fresh) {
    const findings = found.get(r.scope);
    if (!findings) continue;
    const owner = r.scope === GLOBAL_SCOPE ? null : r.scope;
    out.set(r.scope, {
      scope: r.scope,
      tenantId: owner,
      computedAt: r.computedAt,
      findings: findings.filter((f) => f.tenantId === owner),
      score: (r.score as unknown as Score | null) ?? null,
      truncated: r.truncated,
      tookMs: r.tookMs,
    });
  }
  return out;
}
