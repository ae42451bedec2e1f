import "server-only";
import { and, desc, eq, gte, inArray, lt, or, type SQL } from "drizzle-orm";
import canonicalize from "canonicalize";
import { z } from "zod";
import { decisions, fleetServers, type DecisionContextRecord } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decide, decisionView, type Decision, type DecideRequest, type DecisionView, type LiveState } from "@/lib/enforcement/decide";
import { isRevoked, unapprovedClient } from "@/lib/enforcement/live-index";
import { MASKED } from "@/lib/enforcement/masking";
import { argumentTypesByServer } from "@/lib/enforcement/model";
import { AppError } from "@/lib/errors";
import { decisionInputs } from "./decision-live";
import { activeBundle, draftBundle } from "./service";
import { DECISION_LIMITS } from "@/lib/enforcement/decision-record";

/** A logged tools/call decision, as far as replaying it reads. */
export interface LoggedCall {
  serverId: string;
  tool: string | null;
  tenantId: string;
  userId: string;
  clientId: string | null;
  scopes: string[] | null;
  args: Record<string, unknown> | null;
  at: Date;
  context: DecisionContextRecord | null;
}

/** The `decide()` request a logged tools/call decision stands for: impact replay and the least-privilege remedies replay the log with it. */
export function replayRequest(d: LoggedCall): DecideRequest {
  const c = d.context ?? {};
  const token = c.token ?? { iss: "", iat: 0, exp: 0 };
  return {
    method: "tools/call",
    serverId: d.serverId,
    tool: d.tool,
    principal: {
      issuer: token.iss,
      tenantId: d.tenantId,
      user: d.userId,
      client: d.clientId ?? "",
      scopes: d.scopes ?? [],
      groups: c.groups ?? [],
      actors: c.actors ?? [],
      iat: token.iat,
      exp: token.exp,
    },
    args: d.args ?? {},
    time: d.at,
    ...(c.ip ? { ip: c.ip } : {}),
  };
}

export const IMPACT_MAX = 100_000;
/** Rows per keyset page: large enough to amortize round trips, small enough to keep memory flat. */
const CHUNK = 5_000;

export const impactInput = z.object({
  limit: z
    .number()
    .int()
    .min(1)
    .max(IMPACT_MAX, `at most ${IMPACT_MAX.toLocaleString("en")} decisions`)
    .default(10_000)
    .describe("How many of the most recent decisions to replay (tools/call, resources/read and subscribe, prompts/get, completion/complete)"),
  since: z.iso.datetime({ offset: true }).optional().describe("Only decisions at or after this time"),
  examples: z.number().int().min(1).max(100).default(5).describe("Example decisions kept per group"),
});
export type ImpactInput = z.input<typeof impactInput>;

type Side = Pick<Decision, "decision" | "reason" | "determining">;

export interface ImpactExample {
  id: string;
  at: string;
  tenantId: string | null;
  serverId: string;
  tool: string | null;
  user: string | null;
  client: string | null;
  /** As stored (already masked by the agent). */
  args: Record<string, unknown> | null;
  stored: string;
  bundleRevision: number | null;
  before: Side;
  after: Side;
}

export interface ImpactGroup {
  key: string;
  label: string;
  allowToDeny: number;
  denyToAllow: number;
  examples: ImpactExample[];
}

export interface ImpactResult {
  fleetId: string;
  baselineRevision: number | null;
  draftRevision: number;
  totals: {
    loaded: number;
    replayed: number;
    unchanged: number;
    allowToDeny: number;
    denyToAllow: number;
    skipped: number;
    skippedReasons: Record<string, number>;
    /** Evaluated replays whose baseline answer differs from the stored outcome (decided under another revision, or masked). Informational. */
    baselineDiffersFromStored: number;
    /** Replays answered "unchanged" without evaluation: nothing their decision depends on differs between the bundles. */
    identicalSlices: number;
    /** Replays answered from an identical earlier request (same user, groups, client, scopes and the arguments and context the policies read). */
    memoHits: number;
  };
  byTool: ImpactGroup[];
  byPolicy: ImpactGroup[];
  changedPolicies: { id: string; name: string; change: "added" | "removed" | "changed" }[];
  timing: { compileMs: number; loadMs: number; replayMs: number; totalMs: number };
  oldest: string | null;
  newest: string | null;
}

const HASHED = /^sha256:[0-9a-f]{32}$/;

/** Whether a stored value (or anything inside it) is a masking marker. */
// Hot path (every replayed decision): plain loops.
function holdsMask(v: unknown): boolean {
  if (typeof v === "string") return v === MASKED || HASHED.test(v);
  if (v && typeof v === "object") {
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (holdsMask(x)) return true;
  }
  return false;
}

/** Top-level argument names whose value was masked by the agent (Cedar sees only top-level arguments). */
export function maskedArgNames(args: Record<string, unknown> | null | undefined): string[] {
  const out: string[] = [];
  if (!args || typeof args !== "object") return out;
  for (const k of Object.keys(args)) if (holdsMask(args[k])) out.push(k);
  return out;
}

/**
 * The argument names a Cedar policy reads ("*" when it reads the whole
 * record or in a way we cannot name). Conservative by design: a false "*"
 * only skips a decision, never guesses an outcome.
 */
export function argsRead(text: string): Set<string> {
  const out = new Set<string>();
  const named: [RegExp, (m: RegExpExecArray) => string][] = [
    [/context\.args\.([A-Za-z_][A-Za-z0-9_]*)/g, (m) => m[1]!],
    [/context\.args\s*\[\s*("(?:[^"\\]|\\.)*")\s*\]/g, (m) => JSON.parse(m[1]!) as string],
    [/context\.args\s+has\s+([A-Za-z_][A-Za-z0-9_]*)/g, (m) => m[1]!],
    [/context\.args\s+has\s+("(?:[^"\\]|\\.)*")/g, (m) => JSON.parse(m[1]!) as string],
  ];
  let matched = 0;
  for (const [re, name] of named) {
    for (let m = re.exec(text); m; m = re.exec(text)) {
      out.add(name(m));
      matched++;
    }
  }
  const total = text.match(/context\.args\b/g)?.length ?? 0;
  if (total > matched || /context\s*\[\s*"args"\s*\]|context\s+has\s+"?args\b/.test(text)) out.add("*");
  return out;
}

/** The request context fields a Cedar policy reads ("*" when it reads `context` in a way we cannot name). */
export function contextRead(text: string): Set<string> {
  const out = new Set<string>();
  let matched = 0;
  const re = /\bcontext\.([A-Za-z_][A-Za-z0-9_]*)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.add(m[1]!);
    matched++;
  }
  if ((text.match(/\bcontext\b/g)?.length ?? 0) > matched) out.add("*");
  return out;
}

/**
 * Whether a Cedar policy can tell users apart by id (a `User::` literal, or
 * `principal` used other than `principal in …` / `principal is …` / the
 * unconstrained head). Otherwise only the user's groups and tenant matter.
 */
export function readsUserId(text: string): boolean {
  return /User::/.test(text) || /\bprincipal\b(?!\s*(?:in\b|is\b|,|\)))/.test(text);
}

/** A value's JSON shape, which is all the engine's type check sees of an argument no policy reads. */
function shape(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) {
    for (const x of v) if (typeof x !== "string") return "array";
    return "string[]";
  }
  if (typeof v === "number") return Number.isSafeInteger(v) ? "int" : "number";
  return typeof v;
}

interface Slice {
  changedReads: Set<string>;
  allReads: Set<string>;
  /** Context fields any applicable policy (either side) reads. */
  contextReads: Set<string>;
  /** Whether any applicable policy can tell users apart by id. */
  userMatters: boolean;
  /** Both bundles decide this (server, tenant, tool) identically: same policies, tool, server and argument types. */
  same: boolean;
  /** Replays memoized by the parts of the request the slice's policies can see. */
  memo: Map<string, [Decision, Decision]>;
}

/** Policy ids whose text differs between two bundles (added, removed or changed). */
function changedPolicies(base: BundleContent | null, draft: BundleContent) {
  const a = base?.cedar.policies ?? {};
  const b = draft.cedar.policies;
  const out: { id: string; name: string; change: "added" | "removed" | "changed" }[] = [];
  for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const name = draft.policies[id]?.name ?? base?.policies[id]?.name ?? id;
    if (!(id in a)) out.push({ id, name, change: "added" });
    else if (!(id in b)) out.push({ id, name, change: "removed" });
    else if (a[id] !== b[id]) out.push({ id, name, change: "changed" });
  }
  return out.sort((x, y) => x.id.localeCompare(y.id));
}

/** The decisions replayed: tool calls, and (issue 11) resource reads, prompt gets and completions. */
const REPLAYED_METHODS = ["tools/call", "resources/read", "resources/subscribe", "prompts/get", "completion/complete"];

/** Same relevance rule as the engine's slices: unknown metadata keeps the policy. */
function applies(meta: BundleContent["policies"][string] | undefined, serverId: string, tenantId: string, tool: string) {
  return !meta || (meta.serverId === serverId && (meta.tenantId === null || meta.tenantId === tenantId) && (!meta.tools || meta.tools.includes(tool)));
}

/**
 * Replays the fleet's most recent tools/call, resources/read|subscribe,
 * prompts/get and completion/complete decisions against its live
 * bundle (baseline) and its draft with `decide()` (lib/enforcement/decide.ts),
 * as an agent would decide them now: revocations and client approval as they
 * stand in the database, and drift against the catalogue's latest versions.
 * Reports what the draft would change.
 * Owners and auditors only, like the other bundle calls. Decisions decided
 * under an older revision are compared with the baseline replay, not with
 * their stored outcome; decisions whose masked arguments a changed policy
 * reads are skipped rather than guessed.
 */
export async function analyzeImpact(ctx: Ctx, fleetId: string, rawInput: ImpactInput): Promise<ImpactResult> {
  const input = impactInput.parse(rawInput);
  const t0 = performance.now();
  const draftInfo = await draftBundle(ctx, fleetId); // authorizes (owners and auditors) and 404s an unknown fleet
  if (draftInfo.issues.length) {
    throw new AppError(
      "validation_failed",
      `The draft does not compile (${draftInfo.issues.length} problem${draftInfo.issues.length > 1 ? "s" : ""}); fix it before analysing its impact`,
      draftInfo.issues.map((i) => ({ path: i.policy ? `policies.${i.policy.id}` : "bundle", message: `${i.policy ? `${i.policy.name}: ` : ""}${i.message}` })),
    );
  }
  const liveRow = await activeBundle(ctx.db, fleetId);
  // Both sides with today's live state (revocations, client approval) and each with its own drift set.
  const draftSide = await decisionInputs(ctx.db, draftInfo.content);
  const baseSide = liveRow ? await decisionInputs(ctx.db, liveRow.content as unknown as BundleContent) : null;
  const draft = draftSide.content;
  const base = baseSide?.content ?? null;
  const draftView = decisionView(draft);
  const baseView: DecisionView | null = base ? decisionView(base) : null;
  const draftLive: LiveState = draftSide.live;
  const baseLive: LiveState = baseSide?.live ?? {};
  const changed = changedPolicies(base, draft);
  const serverIds = (await ctx.db.select({ id: fleetServers.serverId }).from(fleetServers).where(eq(fleetServers.fleetId, fleetId))).map((r) => r.id);
  const known = new Set([...draft.servers.map((s) => s.id), ...(base?.servers.map((s) => s.id) ?? [])]);
  const compileMs = performance.now() - t0;

  const changedIds = new Set(changed.map((c) => c.id));
  // The engine types arguments per server, from that server's tools: a change there can flip any call to the server.
  const draftTypes = argumentTypesByServer(draft.catalogue);
  const baseTypes = base ? argumentTypesByServer(base.catalogue) : null;
  const typesOf = (m: ReturnType<typeof argumentTypesByServer> | null, serverId: string) => canonicalize([...(m?.get(serverId)?.types ?? new Map())].sort()) ?? "";
  const slices = new Map<string, Slice>();
  const sliceOf = (serverId: string, tenantId: string, tool: string): Slice => {
    const key = `${serverId}\u0000${tenantId}\u0000${tool}`;
    let s = slices.get(key);
    if (s) return s;
    s = { changedReads: new Set(), allReads: new Set(), contextReads: new Set(), userMatters: false, same: false, memo: new Map() };
    const applicable: Record<string, string>[] = [];
    for (const c of [base, draft]) {
      const mine: Record<string, string> = {};
      applicable.push(mine);
      if (!c) continue;
      for (const [pid, text] of Object.entries(c.cedar.policies)) {
        if (!applies(c.policies[pid], serverId, tenantId, tool)) continue;
        mine[pid] = text;
        const reads = argsRead(text);
        for (const r of reads) s.allReads.add(r);
        for (const r of contextRead(text)) s.contextReads.add(r);
        if (readsUserId(text)) s.userMatters = true;
        if (changedIds.has(pid)) for (const r of reads) s.changedReads.add(r);
      }
    }
    const pick = (c: BundleContent | null) => [
      c?.servers.find((x) => x.id === serverId) ?? null,
      c?.catalogue.find((x) => x.serverId === serverId && x.name === tool) ?? null,
      c?.cedar.entities.filter((e) => (e.uid.type === "Server" && e.uid.id === serverId) || (e.uid.type === "Tool" && e.uid.id === `${serverId}/${tool}`)) ?? null,
    ];
    const sameArgTypes = base !== null && typesOf(baseTypes, serverId) === typesOf(draftTypes, serverId);
    // Drift is per tool and bundle (its approved hash against the catalogue's latest version).
    const toolKey = `${serverId}/${tool}`;
    const sameDrift = (baseLive.drifted?.has(toolKey) ?? false) === (draftLive.drifted?.has(toolKey) ?? false);
    s.same = sameArgTypes && sameDrift && base !== null && canonicalize(applicable[0]) === canonicalize(applicable[1]) && canonicalize(pick(base)) === canonicalize(pick(draft));
    slices.set(key, s);
    return s;
  };
  /** The memo key: every part of the request the slice's policies (or the engine's own checks) can see. */
  const memoKey = (
    s: Slice,
    d: { tenantId: string | null; userId: string | null; clientId: string | null; scopes: string[] | null; args: Record<string, unknown> | null; at: Date },
    c: NonNullable<(typeof decisions.$inferSelect)["context"]>,
  ) => {
    const all = s.contextReads.has("*");
    const reads = (f: string) => all || s.contextReads.has(f);
    const args: unknown[] = [];
    const everyArg = s.allReads.has("*");
    if (d.args) for (const k of Object.keys(d.args)) args.push(k, everyArg || s.allReads.has(k) ? d.args[k] : shape(d.args[k]));
    return JSON.stringify([
      d.tenantId,
      s.userMatters ? d.userId : 0,
      c.groups ?? [],
      reads("client") ? d.clientId : 0,
      reads("scopes") ? (d.scopes ?? []) : 0,
      args,
      reads("time") ? Math.floor(d.at.getTime() / 1000) : 0,
      reads("token") ? (c.token ?? null) : 0,
      reads("network") ? (c.ip ?? null) : 0,
      reads("delegation") ? (c.actors ?? []) : 0,
    ]);
  };
  const readsAny = (reads: Set<string>, names: string[]) => {
    if (names.length === 0) return false;
    if (reads.has("*")) return true;
    for (const n of names) if (reads.has(n)) return true;
    return false;
  };

  const totals: ImpactResult["totals"] = {
    loaded: 0,
    replayed: 0,
    unchanged: 0,
    allowToDeny: 0,
    denyToAllow: 0,
    skipped: 0,
    skippedReasons: {},
    baselineDiffersFromStored: 0,
    identicalSlices: 0,
    memoHits: 0,
  };
  const skip = (why: string) => {
    totals.skipped++;
    totals.skippedReasons[why] = (totals.skippedReasons[why] ?? 0) + 1;
  };
  const byTool = new Map<string, ImpactGroup>();
  const byPolicy = new Map<string, ImpactGroup>();
  const bump = (groups: Map<string, ImpactGroup>, key: string, label: string, dir: "allowToDeny" | "denyToAllow", ex: ImpactExample) => {
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { key, label, allowToDeny: 0, denyToAllow: 0, examples: [] }));
    g[dir]++;
    if (g.examples.length < input.examples) g.examples.push(ex);
  };
  const policyLabel = (pid: string) => draft.policies[pid]?.name ?? base?.policies[pid]?.name ?? pid;
  const noBaseline: Decision = { decision: "deny", reason: "no bundle is live", determining: [], errors: [], stage: "error", stepUpScopes: [] };
  const side = (r: Decision): Side => ({ decision: r.decision, reason: r.reason, determining: r.determining });

  let oldest: string | null = null;
  let newest: string | null = null;
  let cursor: { at: Date; id: string } | null = null;
  const since = input.since ? new Date(input.since) : null;

  // Load every chunk, then replay: the load/replay split stays exact, and 100,000 rows of a
  // few hundred bytes fit easily in memory.
  type Row = Awaited<ReturnType<typeof loadChunk>>[number];
  const loadChunk = (conds: (SQL | undefined)[], n: number) =>
    ctx.db
      .select({
        id: decisions.id,
        at: decisions.at,
        method: decisions.method,
        tenantId: decisions.tenantId,
        serverId: decisions.serverId,
        tool: decisions.tool,
        userId: decisions.userId,
        clientId: decisions.clientId,
        scopes: decisions.scopes,
        args: decisions.args,
        context: decisions.context,
        outcome: decisions.outcome,
        bundleRevision: decisions.bundleRevision,
      })
      .from(decisions)
      .where(and(...conds))
      .orderBy(desc(decisions.at), desc(decisions.id))
      .limit(n);
  const loaded: Row[] = [];
  const tl = performance.now();
  while (serverIds.length && totals.loaded < input.limit) {
    const conds: (SQL | undefined)[] = [inArray(decisions.serverId, serverIds), inArray(decisions.method, REPLAYED_METHODS)];
    if (since) conds.push(gte(decisions.at, since));
    if (cursor) conds.push(or(lt(decisions.at, cursor.at), and(eq(decisions.at, cursor.at), lt(decisions.id, cursor.id))));
    const rows = await loadChunk(conds, Math.min(CHUNK, input.limit - totals.loaded));
    if (!rows.length) break;
    const last = rows[rows.length - 1]!;
    cursor = { at: last.at, id: last.id };
    newest ??= rows[0]!.at.toISOString();
    oldest = last.at.toISOString();
    totals.loaded += rows.length;
    for (const r of rows) loaded.push(r);
    if (rows.length < CHUNK) break;
  }
  const loadMs = performance.now() - tl;

  const tr = performance.now();
  for (const d of loaded) {
    if (!d.tenantId || !d.userId || !d.tool) {
      skip("incomplete decision (no tenant, user or tool)");
      continue;
    }
    if (!known.has(d.serverId)) {
      skip("unknown server");
      continue;
    }
    const masked = maskedArgNames(d.args);
    let before: Decision;
    let after: Decision;
    if (d.method !== "tools/call" && d.tool.length >= DECISION_LIMITS.tool && d.tool.endsWith("…")) {
      // The record cut a long URI or name: replaying the cut one would decide another request.
      skip("name cut in the record");
      continue;
    }
    if (d.method !== "tools/call") {
      // A resource read, prompt get or completion: decided afresh on both sides (no slice shortcut:
      // slices are per tool). When its arguments were not recorded or some were masked, a flip a
      // policy reading context.args could cause is skipped rather than guessed (a read through a
      // template takes its arguments from the URI, which is recorded).
      const ctxOther = d.context ?? {};
      const tok = ctxOther.token ?? { iss: "", iat: 0, exp: 0 };
      const other: DecideRequest = {
        method: d.method,
        serverId: d.serverId,
        name: d.tool,
        principal: {
          issuer: tok.iss,
          tenantId: d.tenantId,
          user: d.userId,
          client: d.clientId ?? "",
          scopes: d.scopes ?? [],
          groups: ctxOther.groups ?? [],
          actors: ctxOther.actors ?? [],
          iat: tok.iat,
          exp: tok.exp,
        },
        args: d.args ?? {},
        time: d.at,
        ...(ctxOther.ip ? { ip: ctxOther.ip } : {}),
      };
      before = baseView ? decide(baseView, other, baseLive) : noBaseline;
      after = decide(draftView, other, draftLive);
      const argsMatter = (v: DecisionView | null) =>
        !!v && (["prompt", "resourceTemplate"] as const).some((k) => v.engine.entry(d.serverId, k, d.tool!) && v.engine.mayReadArgs(d.serverId, d.tenantId!, d.tool!, k));
      if (
        before.decision !== after.decision &&
        d.method !== "resources/read" &&
        d.method !== "resources/subscribe" &&
        (!d.args || masked.length > 0) &&
        (argsMatter(baseView) || argsMatter(draftView))
      ) {
        skip(d.args ? "masked arguments" : "arguments not recorded");
        continue;
      }
    } else {
      const slice = sliceOf(d.serverId, d.tenantId, d.tool);
      if (readsAny(slice.changedReads, masked)) {
        skip("masked arguments");
        continue;
      }
      const ctxRec = d.context ?? {};
      if (slice.same) {
        // Identical on both sides: the answer cannot change, no need to ask Cedar twice.
        totals.replayed++;
        totals.unchanged++;
        totals.identicalSlices++;
        continue;
      }
      const req = replayRequest({ ...d, tenantId: d.tenantId, userId: d.userId });
      // The live checks read the user, client and token's iat, which the memo key may leave out: their outcome is part of the key.
      const p = req.principal;
      const gate = (c: BundleContent | null) => (c ? `${isRevoked(c, p, d.serverId) ? 1 : 0}${unapprovedClient(c, p) ? 1 : 0}` : "--");
      const mk = `${gate(base)}${gate(draft)}${memoKey(slice, d, ctxRec)}`;
      const hit = slice.memo.get(mk);
      if (hit) totals.memoHits++;
      const pair: [Decision, Decision] = hit ?? [baseView ? decide(baseView, req, baseLive) : noBaseline, decide(draftView, req, draftLive)];
      if (!hit) slice.memo.set(mk, pair);
      before = pair[0];
      after = pair[1];
      if (before.decision !== after.decision && readsAny(slice.allReads, masked)) {
        // The flip may come from a policy reading a masked value: do not guess.
        skip("masked arguments");
        continue;
      }
    }
    totals.replayed++;
    if (d.outcome !== "error" && d.outcome !== before.decision) totals.baselineDiffersFromStored++;
    if (before.decision === after.decision) {
      totals.unchanged++;
      continue;
    }
    const dir = before.decision === "allow" ? "allowToDeny" : "denyToAllow";
    totals[dir]++;
    const ex: ImpactExample = {
      id: d.id,
      at: d.at.toISOString(),
      tenantId: d.tenantId,
      serverId: d.serverId,
      tool: d.tool,
      user: d.userId,
      client: d.clientId,
      args: d.args ?? null,
      stored: d.outcome,
      bundleRevision: d.bundleRevision,
      before: side(before),
      after: side(after),
    };
    bump(byTool, `${d.serverId}/${d.tool}`, d.tool, dir, ex);
    // The policy responsible: the draft's determining policies (the forbid that now denies, the permit that now allows);
    // when the draft denies by default, the baseline's permits that no longer apply.
    const fromDraft = after.determining.length > 0;
    const pids = fromDraft ? after.determining : before.determining;
    const sideName = fromDraft ? "draft" : "baseline";
    if (pids.length) for (const pid of pids) bump(byPolicy, pid, `${policyLabel(pid)} (${sideName})`, dir, ex);
    else bump(byPolicy, `(${after.reason})`, `no policy: ${after.reason}`, dir, ex);
  }
  const replayMs = performance.now() - tr;

  const order = (m: Map<string, ImpactGroup>) => [...m.values()].sort((a, b) => b.allowToDeny + b.denyToAllow - (a.allowToDeny + a.denyToAllow) || a.key.localeCompare(b.key));
  const ms = (x: number) => Math.round(x * 10) / 10;
  return {
    fleetId: draftInfo.fleetId,
    baselineRevision: liveRow?.revision ?? null,
    draftRevision: draftInfo.revision,
    totals,
    byTool: order(byTool),
    byPolicy: order(byPolicy),
    changedPolicies: changed,
    timing: { compileMs: ms(compileMs), loadMs: ms(loadMs), replayMs: ms(replayMs), totalMs: ms(performance.now() - t0) },
    oldest,
    newest,
  };
}
