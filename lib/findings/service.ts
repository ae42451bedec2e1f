import "server-only";
import { and, asc, count, desc, eq, gt, gte, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { auditEvents, findingSettings, fleetServers, fleets, privilegeScores, scopeMappings, tenants } from "@/db/schema";
import { can, seesAllTenants } from "@/lib/auth/permissions";
import type { Kek } from "@/lib/bundles/signing";
import type { RegistrySnapshot } from "@/lib/bundles/compile";
import { blockTool } from "@/lib/catalog/service";
import type { Ctx } from "@/lib/context";
import { AppError, forbidden, notFound } from "@/lib/errors";
import { checkUrl, EgressError } from "@/lib/net/egress";
import { createPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";
import { openSecret, sealSecret } from "@/lib/vault/crypto";
import { computeFindings, DEFAULT_SETTINGS, findingKinds, policyRemedies, type ComputeResult, type Finding, type PolicyRemedy, type TenantSettings } from "./compute";
import { remedyImpact, type RemedyImpact } from "./impact";
import { GLOBAL_SCOPE, readFresh, storeResults, type StoredScope } from "./store";

const DAY = 86_400_000;
const tenantIdParam = z.string().max(100);

export const findingListQuery = z.object({
  tenantId: tenantIdParam.optional().describe("One tenant; without it, every tenant the caller reads (and, for owners and global auditors, the fleet-wide findings)"),
  kind: z.enum(findingKinds).optional(),
});
export type FindingListQuery = z.infer<typeof findingListQuery>;
export const findingExportQuery = findingListQuery.extend({ format: z.enum(["csv", "ndjson"]).default("csv") });
export const remedyInput = z.object({
  action: z.enum(policyRemedies).describe("Which remedy of the finding to draft"),
  tenantId: tenantIdParam.optional().describe("The finding's tenant, when known (narrows the computation; authorization is on the finding's own tenant)"),
  acknowledgeFlips: z.boolean().default(false).describe("Create the draft even though its impact shows calls it would stop (allow → deny)"),
});
export const scoreQuery = z.object({ tenantId: tenantIdParam, days: z.coerce.number().int().min(1).max(365).default(90) });
export const settingsQuery = z.object({ tenantId: tenantIdParam.optional().describe("Omit for the owners' fleet-wide settings") });
export const settingsInput = z.object({
  unusedDays: z.number().int().min(1).max(365).optional().describe("A capability not used in this many days is a finding (default 30)"),
  smallSharePercent: z.number().int().min(1).max(99).optional().describe("A user or client using at most this share of the tools its scopes allow is a finding (default 25)"),
  webhookUrl: z
    .union([z.url({ protocol: /^https?$/ }).max(2048), z.literal(""), z.null()])
    .optional()
    .describe("Where the weekly digest is POSTed (Slack-compatible JSON); empty or null removes it. Write-only: answers show only its scheme and host"),
});

/** The tenants whose findings the caller may read, narrowed to `tenantId` when given. */
function readableTenants(ctx: Ctx, all: string[], tenantId?: string): string[] {
  const ok = (t: string) => can(ctx.actor, "decisions.read", t);
  if (tenantId) {
    if (!all.includes(tenantId) || !ok(tenantId)) throw notFound("Tenant");
    return [tenantId];
  }
  return all.filter(ok);
}

async function allTenantIds(db: Db): Promise<string[]> {
  return (await db.select({ id: tenants.id }).from(tenants).orderBy(asc(tenants.id))).map((t) => t.id);
}

/** The settings of these tenants (and "global"), defaults where none was saved. */
export async function loadSettings(db: Db, ids: string[]): Promise<Map<string, TenantSettings>> {
  const rows = ids.length ? await db.select().from(findingSettings).where(inArray(findingSettings.id, ids)) : [];
  const out = new Map<string, TenantSettings>();
  for (const id of ids) {
    const r = rows.find((x) => x.id === id);
    out.set(id, r ? { unusedDays: r.unusedDays, smallSharePercent: r.smallSharePercent } : DEFAULT_SETTINGS);
  }
  return out;
}

/** Where each scope of an answer came from: the store (with its computed-at time) or a live computation now. */
export interface ScopeSource {
  tenantId: string | null;
  source: "stored" | "live";
  computedAt: string;
}

export interface VisibleFindings extends ComputeResult {
  /** The oldest computation the answer is made of. */
  computedAt: string;
  /** "stored" when every scope came from the store, "live" when none did, else "mixed". */
  source: "stored" | "live" | "mixed";
  scopes: ScopeSource[];
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const rank = { high: 0, medium: 1, low: 2 };

/**
 * The findings the caller may see: each scope (tenant the caller reads, and
 * the fleet-wide findings for owners and global auditors) from the store
 * when its stored result is fresh (lib/findings/store.ts), the others
 * computed live together. Merged in computeFindings' own order (tenants by
 * id, then fleet-wide, sorted by severity, kind and title), so the list is
 * the one a live computation of every scope gives.
 */
async function visibleFindings(ctx: Ctx, q: { tenantId?: string; kind?: string }, opts: { live?: boolean } = {}): Promise<VisibleFindings> {
  const t0 = performance.now();
  const ids = readableTenants(ctx, await allTenantIds(ctx.db), q.tenantId).sort(byId);
  const global = !q.tenantId && seesAllTenants(ctx.actor);
  const settings = await loadSettings(ctx.db, [...ids, "global"]);
  const now = new Date();
  const stored = opts.live ? new Map<string, StoredScope>() : await readFresh(ctx.db, global ? [...ids, GLOBAL_SCOPE] : ids, settings, now);
  const missing = ids.filter((t) => !stored.has(t));
  const needGlobal = global && !stored.has(GLOBAL_SCOPE);
  const live = missing.length || needGlobal ? await computeFindings(ctx.db, { tenantIds: missing, global: needGlobal, settings, now }) : null;
  const findings: Finding[] = [];
  const scores: ComputeResult["scores"] = [];
  const scopes: ScopeSource[] = [];
  let truncated = live?.truncated ?? false;
  const part = (scope: string, tenantId: string | null) => {
    const s = stored.get(scope);
    if (s) {
      findings.push(...s.findings);
      if (s.score) scores.push(s.score);
      truncated ||= s.truncated;
      scopes.push({ tenantId, source: "stored", computedAt: s.computedAt.toISOString() });
    } else if (live) {
      findings.push(...live.findings.filter((f) => f.tenantId === tenantId));
      scores.push(...live.scores.filter((x) => x.tenantId === tenantId));
      scopes.push({ tenantId, source: "live", computedAt: now.toISOString() });
    }
  };
  for (const t of ids) part(t, t);
  if (global) part(GLOBAL_SCOPE, null);
  findings.sort((a, b) => rank[a.severity] - rank[b.severity] || a.kind.localeCompare(b.kind) || a.title.localeCompare(b.title));
  const times = scopes.map((x) => x.computedAt).sort();
  const nStored = scopes.filter((x) => x.source === "stored").length;
  return {
    findings: q.kind ? findings.filter((f) => f.kind === q.kind) : findings,
    scores,
    truncated,
    tookMs: Math.round((performance.now() - t0) * 10) / 10,
    computedAt: times[0] ?? now.toISOString(),
    source: nStored === 0 ? "live" : nStored === scopes.length ? "stored" : "mixed",
    scopes,
  };
}

function countsByKind(findings: Finding[]) {
  const out: Record<string, number> = Object.fromEntries(findingKinds.map((k) => [k, 0]));
  for (const f of findings) out[f.kind] = (out[f.kind] ?? 0) + 1;
  return out;
}

function listAnswer(r: VisibleFindings) {
  return { items: r.findings, counts: countsByKind(r.findings), scores: r.scores, truncated: r.truncated, tookMs: r.tookMs, computedAt: r.computedAt, source: r.source, scopes: r.scopes };
}

/** Findings, with counts per kind, the current privilege scores, when they were computed and how long the answer took. */
export async function listFindings(ctx: Ctx, q: FindingListQuery) {
  return listAnswer(await visibleFindings(ctx, q));
}

/** One finding, found by its id among those the caller may see (another tenant's: 404); it may come from the store. */
export async function getFinding(ctx: Ctx, findingId: string, tenantId?: string): Promise<Finding> {
  const r = await visibleFindings(ctx, { tenantId });
  const f = r.findings.find((x) => x.id === findingId);
  if (!f) throw notFound("Finding (it may have been remedied)");
  return f;
}

/**
 * The finding as a computation made now finds it, for a remedy: found first
 * among those the caller may see (from the store or live; another tenant's:
 * 404), then computed again, live, for its own scope (its tenant from the
 * finding, or the fleet-wide findings). A finding the fresh computation no
 * longer has is refused with 409: a remedy never acts on a stale finding.
 * The remedy is planned from the fresh finding (its current evidence).
 */
export async function freshFinding(ctx: Ctx, findingId: string, tenantId?: string): Promise<Finding> {
  const seen = await getFinding(ctx, findingId, tenantId);
  const scope = seen.tenantId ?? "global";
  const settings = await loadSettings(ctx.db, [scope]);
  const r = await computeFindings(ctx.db, { tenantIds: seen.tenantId ? [seen.tenantId] : [], global: seen.tenantId === null, settings });
  const f = r.findings.find((x) => x.id === findingId && x.tenantId === seen.tenantId);
  if (!f) {
    throw new AppError(
      "conflict",
      "This finding no longer holds: computed again now, it is not found (it may have been remedied, or the traffic or registry changed since it was computed). Reload the findings or Recompute",
    );
  }
  return f;
}

// ---------------------------------------------------------------- recompute

export const RECOMPUTE_LIMIT = 3;
export const RECOMPUTE_WINDOW_SECONDS = 300;
export const recomputeInput = z.object({
  tenantId: tenantIdParam.optional().describe("One tenant; without it, every tenant the caller reads (and, for owners and global auditors, the fleet-wide findings)"),
});

/**
 * Recomputes now, live, the findings of the scopes the caller may see (as
 * the list would show them) and stores them, replacing the job's result.
 * Limited per user across replicas (RECOMPUTE_LIMIT in RECOMPUTE_WINDOW_SECONDS,
 * counted from the trail under a per-user advisory lock) and recorded in the
 * admin trail as findings.recompute. Answers the list, computed now.
 */
export async function recomputeFindings(ctx: Ctx, input: z.infer<typeof recomputeInput>) {
  const ids = readableTenants(ctx, await allTenantIds(ctx.db), input.tenantId).sort(byId);
  const global = !input.tenantId && seesAllTenants(ctx.actor);
  if (!ids.length && !global) throw notFound("Tenant");
  const now = new Date();
  await ctx.db.transaction(async (tx) => {
    // One user's concurrent requests queue here, so the count cannot be raced past the limit.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`findings.recompute:${ctx.actor.userId}`}))`);
    const [row] = await tx
      .select({ n: count() })
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "findings.recompute"), gt(auditEvents.at, new Date(now.getTime() - RECOMPUTE_WINDOW_SECONDS * 1000)), sql`${auditEvents.after}->>'userId' = ${ctx.actor.userId}`),
      );
    if ((row?.n ?? 0) >= RECOMPUTE_LIMIT) {
      throw new AppError("rate_limited", `You can recompute findings ${RECOMPUTE_LIMIT} times in ${RECOMPUTE_WINDOW_SECONDS / 60} minutes: wait, then try again`);
    }
    await recordEvent(tx, ctx.actor, {
      action: "findings.recompute",
      targetType: ids.length === 1 && !global ? "tenant" : "findings",
      targetId: ids.length === 1 && !global ? ids[0]! : "all",
      tenantId: ids.length === 1 && !global ? ids[0]! : null,
      after: { userId: ctx.actor.userId, tenants: ids.length, global },
    });
  });
  const settings = await loadSettings(ctx.db, [...ids, "global"]);
  const r = await computeFindings(ctx.db, { tenantIds: ids, global, settings, now });
  const stored = await storeResults(ctx.db, r, { tenantIds: ids, global }, settings, now, ctx.actor.userId);
  // Parsed once here, so the list that follows reads this process's copy.
  await readFresh(ctx.db, global ? [...ids, GLOBAL_SCOPE] : ids, settings);
  const scopes: ScopeSource[] = [...ids.map((t) => ({ tenantId: t as string | null })), ...(global ? [{ tenantId: null }] : [])].map((s) => ({
    ...s,
    source: "live" as const,
    computedAt: now.toISOString(),
  }));
  return { ...listAnswer({ ...r, computedAt: now.toISOString(), source: "live", scopes }), recomputed: stored.stored, notStored: stored.oversized.length };
}

// ---------------------------------------------------------------- export

const CSV_COLUMNS = [
  "id",
  "kind",
  "severity",
  "tenantId",
  "tenantName",
  "subjectType",
  "subjectId",
  "subjectLabel",
  "serverId",
  "serverName",
  "title",
  "calls",
  "lastUsedAt",
  "windowDays",
  "exampleDecisionIds",
  "remedies",
] as const;

/** A CSV cell: quoted when needed, and a leading = + - @ made inert (spreadsheet formula injection). */
function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? "" : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function findingRecord(f: Finding) {
  return {
    id: f.id,
    kind: f.kind,
    severity: f.severity,
    tenantId: f.tenantId,
    tenantName: f.tenantName,
    subjectType: f.subject.type,
    subjectId: f.subject.id,
    subjectLabel: f.subject.label,
    serverId: f.subject.serverId ?? null,
    serverName: f.subject.serverName ?? null,
    title: f.title,
    calls: f.evidence.calls,
    lastUsedAt: f.evidence.lastUsedAt,
    windowDays: f.evidence.windowDays,
    exampleDecisionIds: f.evidence.exampleDecisionIds.join(" "),
    remedies: f.remedies.map((r) => r.action).join(" "),
  };
}

/** The findings as CSV (one header line) or NDJSON (one finding with its evidence per line). */
export async function exportFindings(ctx: Ctx, q: z.infer<typeof findingExportQuery>): Promise<{ body: string; contentType: string; filename: string }> {
  const r = await visibleFindings(ctx, q);
  const stamp = new Date().toISOString().slice(0, 10);
  if (q.format === "ndjson")
    return { body: r.findings.map((f) => JSON.stringify(f)).join("\n") + (r.findings.length ? "\n" : ""), contentType: "application/x-ndjson", filename: `findings-${stamp}.ndjson` };
  const lines = [CSV_COLUMNS.join(",")];
  for (const f of r.findings) {
    const rec = findingRecord(f);
    lines.push(CSV_COLUMNS.map((c) => csvCell(rec[c])).join(","));
  }
  return { body: `${lines.join("\r\n")}\r\n`, contentType: "text/csv; charset=utf-8", filename: `findings-${stamp}.csv` };
}

// ---------------------------------------------------------------- remedies that change policy

/** The Cedar of a "permit only what was used" remedy: a forbid on every other tool of the server for that user or client. */
export function leastPrivilegeCedar(serverId: string, who: "user" | "client", id: string, usedTools: string[]): string {
  // As the rule editor names users: an issuer-qualified id (iss#sub) is the User entity itself, a bare one its subject.
  const user = id.includes("#") ? `principal in [User::${JSON.stringify(id)}]` : `[${JSON.stringify(id)}].contains(principal.sub)`;
  const cond = who === "user" ? user : `context.client == ${JSON.stringify(id)}`;
  const keep = usedTools.map((n) => `Tool::${JSON.stringify(`${serverId}/${n}`)}`).join(", ");
  return `forbid (principal, action in [Action::"call_tool", Action::"list_tools"], resource in Server::${JSON.stringify(serverId)})\nwhen { ${cond} }\nunless { resource in [${keep}] };`;
}

function policyName(f: Finding) {
  const who = f.kind === "over_broad_user" ? "user" : "client";
  return `Least privilege ${who} ${f.subject.id}`.slice(0, 80);
}

interface Plan {
  serverId: string;
  description: string;
  /** The change applied to a registry snapshot (for the impact replay). */
  change: (snap: RegistrySnapshot) => RegistrySnapshot;
  /** Replays only this tenant's decisions (a tenant policy cannot change another tenant's answers). */
  tenantId?: string;
  /** Creates the draft through the existing services (their own authorization, trail and checks). */
  apply: (ctx: Ctx) => Promise<unknown>;
}

async function currentMapping(db: Db, serverId: string) {
  const [m] = await db.select().from(scopeMappings).where(eq(scopeMappings.serverId, serverId)).orderBy(desc(scopeMappings.version)).limit(1);
  return { version: m?.version ?? 0, mapping: m?.mapping ?? {} };
}

async function planFor(ctx: Ctx, f: Finding, action: PolicyRemedy): Promise<Plan> {
  if (!f.remedies.some((r) => r.action === action)) throw new AppError("bad_request", `This finding has no remedy "${action}"`);
  const serverId = f.subject.serverId!;
  const without = (mapping: Record<string, string[]>, drop: (scope: string, tool: string) => boolean) => {
    const out: Record<string, string[]> = {};
    for (const [scope, names] of Object.entries(mapping)) {
      const kept = names.filter((n) => !drop(scope, n));
      if (kept.length) out[scope] = kept;
    }
    return out;
  };
  const mappingPlan = async (drop: (scope: string, tool: string) => boolean, description: string): Promise<Plan> => {
    await loadServer(ctx, serverId, "scopes.write");
    const cur = await currentMapping(ctx.db, serverId);
    return {
      serverId,
      description,
      change: (snap) => ({ ...snap, servers: snap.servers.map((s) => (s.id === serverId ? { ...s, mapping: without(s.mapping, drop) } : s)) }),
      apply: (c) => putScopeMapping(c, serverId, { baseVersion: cur.version, mapping: without(cur.mapping, drop) }),
    };
  };
  switch (action) {
    case "narrow_mapping": {
      const scope = f.subject.id;
      const unused = new Set(f.evidence.lists.unusedTools ?? []);
      return mappingPlan((s, n) => s === scope && unused.has(n), `Remove ${[...unused].join(", ")} from scope ${scope} on ${f.subject.serverName}`);
    }
    case "remove_from_mapping": {
      const tool = f.subject.label;
      return mappingPlan((_s, n) => n === tool, `Remove ${tool} from every scope of ${f.subject.serverName}`);
    }
    case "block_tool": {
      await loadServer(ctx, serverId, "catalog.write");
      const tool = f.subject.label;
      return {
        serverId,
        description: `Block ${tool} on ${f.subject.serverName}`,
        change: (snap) => ({ ...snap, servers: snap.servers.map((s) => (s.id === serverId ? { ...s, tools: s.tools.map((t) => (t.name === tool ? { ...t, blocked: true } : t)) } : s)) }),
        apply: (c) => blockTool(c, f.subject.id, { reason: `Least privilege: not called in ${f.evidence.windowDays} days` }),
      };
    }
    case "least_privilege_policy": {
      const tenantId = f.tenantId!;
      if (!can(ctx.actor, "policies.write", tenantId)) throw forbidden();
      const who = f.kind === "over_broad_user" ? "user" : "client";
      const used = f.evidence.lists.usedTools ?? [];
      const cedar = leastPrivilegeCedar(serverId, who, f.subject.id, used);
      const name = policyName(f);
      const description = `Drafted from a least-privilege finding: ${who} ${f.subject.id} used ${used.length} of ${f.evidence.counts.allowedTools} tools in ${f.evidence.windowDays} days; every other tool of the server is forbidden to it.`;
      return {
        serverId,
        tenantId,
        description: `Policy "${name}": permit ${who} ${f.subject.id} only ${used.join(", ")}`,
        change: (snap) => ({ ...snap, policies: [...snap.policies, { id: "pol_least_privilege_preview", tenantId, serverId, name, kind: "cedar", cedar, enabled: true }] }),
        apply: (c) => createPolicy(c, { tenantId, serverId, name, description, kind: "cedar", cedar, enabled: true }),
      };
    }
  }
}

async function planAndImpact(ctx: Ctx, findingId: string, input: z.infer<typeof remedyInput>) {
  const f = await freshFinding(ctx, findingId, input.tenantId);
  const plan = await planFor(ctx, f, input.action);
  const impact = await remedyImpact(ctx.db, {
    serverId: plan.serverId,
    since: new Date(f.evidence.since),
    change: plan.change,
    tenantId: plan.tenantId,
    visible: (t) => t !== null && can(ctx.actor, "decisions.read", t),
  });
  return { finding: f, plan, impact };
}

/** What a remedy would change and its impact on the traffic of the finding's window; nothing is written. */
export async function previewRemedy(ctx: Ctx, findingId: string, input: z.infer<typeof remedyInput>): Promise<{ finding: Finding; action: PolicyRemedy; description: string; impact: RemedyImpact }> {
  const { finding, plan, impact } = await planAndImpact(ctx, findingId, input);
  return { finding, action: input.action, description: plan.description, impact };
}

/**
 * Creates a remedy's draft through the existing services (scope mapping,
 * catalogue block, policy), after computing its impact. A draft whose impact
 * stops calls is refused unless `acknowledgeFlips`. The draft is published
 * like any other: the fleet page's tests, impact analysis and publish. The
 * mapping written is the one the impact was computed on (its version is the
 * save's base: a change saved meanwhile answers 409).
 */
export async function applyRemedy(ctx: Ctx, findingId: string, input: z.infer<typeof remedyInput>) {
  const { finding, plan, impact } = await planAndImpact(ctx, findingId, input);
  if (impact.issues.length)
    throw new AppError(
      "validation_failed",
      "The draft with this remedy does not compile",
      impact.issues.map((m) => ({ path: "draft", message: m })),
    );
  if (impact.allowToDeny > 0 && !input.acknowledgeFlips) {
    throw new AppError(
      "conflict",
      `This remedy would stop ${impact.allowToDeny} call${impact.allowToDeny > 1 ? "s" : ""} of the last ${finding.evidence.windowDays} days; confirm with acknowledgeFlips to draft it anyway`,
    );
  }
  const draft = await plan.apply(ctx);
  await recordEvent(ctx.db, ctx.actor, {
    action: "finding.remedy",
    targetType: "finding",
    targetId: finding.id,
    tenantId: finding.tenantId,
    after: { kind: finding.kind, action: input.action, description: plan.description, allowToDeny: impact.allowToDeny, denyToAllow: impact.denyToAllow, replayed: impact.replayed },
  });
  // Where the draft is tested, analysed and published: the fleets serving the server.
  const publishIn = await ctx.db.select({ id: fleets.id, name: fleets.name }).from(fleetServers).innerJoin(fleets, eq(fleets.id, fleetServers.fleetId)).where(eq(fleetServers.serverId, plan.serverId));
  return { finding, action: input.action, description: plan.description, impact, draft, publishIn: publishIn.map((x) => ({ ...x, href: `/fleets/${x.id}` })) };
}

// ---------------------------------------------------------------- privilege score over time

/** Stores today's score of each tenant (one row per tenant and UTC day; a later run that day replaces it). */
export async function recordScores(db: Db, scores: ComputeResult["scores"], settings: Map<string, TenantSettings>, now = new Date()) {
  const day = now.toISOString().slice(0, 10);
  for (const s of scores) {
    const detail = { pairs: s.pairs, grants: s.grants };
    const windowDays = (settings.get(s.tenantId) ?? DEFAULT_SETTINGS).unusedDays;
    await db
      .insert(privilegeScores)
      .values({ tenantId: s.tenantId, day, windowDays, granted: s.granted, used: s.used, detail, computedAt: now })
      .onConflictDoUpdate({ target: [privilegeScores.tenantId, privilegeScores.day], set: { windowDays, granted: s.granted, used: s.used, detail, computedAt: now } });
  }
}

/** A tenant's score per day (stored daily) and as it is now. */
export async function scoreHistory(ctx: Ctx, q: z.infer<typeof scoreQuery>) {
  const [tenantId] = readableTenants(ctx, await allTenantIds(ctx.db), q.tenantId);
  const since = new Date(Date.now() - q.days * DAY).toISOString().slice(0, 10);
  const rows = await ctx.db
    .select()
    .from(privilegeScores)
    .where(and(eq(privilegeScores.tenantId, tenantId!), gte(privilegeScores.day, since)))
    .orderBy(asc(privilegeScores.day));
  const settings = await loadSettings(ctx.db, [tenantId!]);
  const now = await computeFindings(ctx.db, { tenantIds: [tenantId!], global: false, settings });
  const pct = (used: number, granted: number) => (granted ? Math.round((1000 * used) / granted) / 10 : 100);
  return {
    tenantId,
    current: now.scores[0] ?? null,
    history: rows.map((r) => ({ day: r.day, windowDays: r.windowDays, granted: r.granted, used: r.used, unused: r.granted - r.used, score: pct(r.used, r.granted), detail: r.detail })),
  };
}

// ---------------------------------------------------------------- settings

function hintOf(url: string) {
  const u = new URL(url);
  return `${u.protocol}//${u.host}/…`;
}

/** Loads the settings scope (a tenant the caller reads, or "global" for owners and global auditors) and authorizes. */
export async function authorizeSettings(ctx: Ctx, tenantId: string | undefined, write: boolean) {
  if (!tenantId) {
    if (!seesAllTenants(ctx.actor)) throw notFound("Settings");
    if (write && ctx.actor.globalRole !== "owner") throw forbidden("Only owners change the fleet-wide settings");
    return { id: "global", tenantId: null };
  }
  const [t] = await ctx.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId));
  if (!t || !can(ctx.actor, "tenants.read", t.id)) throw notFound("Tenant");
  if (write && !can(ctx.actor, "tenants.write", t.id)) throw forbidden();
  return { id: t.id, tenantId: t.id };
}

export async function getSettings(ctx: Ctx, q: z.infer<typeof settingsQuery>) {
  const { id, tenantId } = await authorizeSettings(ctx, q.tenantId, false);
  const [r] = await ctx.db.select().from(findingSettings).where(eq(findingSettings.id, id));
  return {
    tenantId,
    unusedDays: r?.unusedDays ?? DEFAULT_SETTINGS.unusedDays,
    smallSharePercent: r?.smallSharePercent ?? DEFAULT_SETTINGS.smallSharePercent,
    webhook: r?.webhookHint ?? null,
    lastDigestAt: r?.lastDigestAt?.toISOString() ?? null,
  };
}

/** Saves settings. A webhook URL is sealed with the key-encryption key and never returned or logged. */
export async function putSettings(ctx: Ctx, q: z.infer<typeof settingsQuery>, input: z.infer<typeof settingsInput>, kek: Kek) {
  const { id, tenantId } = await authorizeSettings(ctx, q.tenantId, true);
  const patch: Partial<typeof findingSettings.$inferInsert> = { updatedAt: new Date() };
  if (input.unusedDays !== undefined) patch.unusedDays = input.unusedDays;
  if (input.smallSharePercent !== undefined) patch.smallSharePercent = input.smallSharePercent;
  if (input.webhookUrl !== undefined) {
    if (input.webhookUrl) {
      try {
        checkUrl(input.webhookUrl, { loopback: true, cidrs: [] }, true);
      } catch (err) {
        throw new AppError("validation_failed", "The webhook URL is not usable", [{ path: "webhookUrl", message: err instanceof EgressError ? err.message : "not a valid URL" }]);
      }
      const s = sealSecret(kek, `findings-webhook:${id}`, 1, input.webhookUrl);
      patch.webhook = { ciphertext: s.ciphertext, wrappedKey: s.wrappedKey, kekId: s.kekId };
      patch.webhookHint = hintOf(input.webhookUrl);
    } else {
      patch.webhook = null;
      patch.webhookHint = null;
    }
  }
  await ctx.db.transaction(async (tx) => {
    await tx
      .insert(findingSettings)
      .values({ id, tenantId, ...patch })
      .onConflictDoUpdate({ target: findingSettings.id, set: patch });
    await recordEvent(tx, ctx.actor, {
      action: "findings.settings",
      targetType: tenantId ? "tenant" : "settings",
      targetId: id,
      tenantId,
      // The webhook URL is a credential: the trail says only whether it changed and its host.
      after: { unusedDays: input.unusedDays, smallSharePercent: input.smallSharePercent, webhook: input.webhookUrl === undefined ? undefined : (patch.webhookHint ?? null) },
    });
  });
  return getSettings(ctx, q);
}

/** The webhook URL of a settings row, opened with the keyring (server side only, for the digest). */
export function openWebhook(keyring: readonly Kek[], row: { id: string; webhook: { ciphertext: string; wrappedKey: string; kekId: string } | null }): string | null {
  if (!row.webhook) return null;
  const v = openSecret(keyring, `findings-webhook:${row.id}`, 1, row.webhook);
  return typeof v === "string" ? v : null;
}
