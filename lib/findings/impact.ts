import "server-only";
import { and, desc, eq, gte, lt, or, type SQL } from "drizzle-orm";
import type { Db } from "@/db/client";
import { decisions } from "@/db/schema";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import { decisionInputs } from "@/lib/bundles/decision-live";
import { contextRead, maskedArgNames, replayRequest } from "@/lib/bundles/impact";
import { loadSnapshot } from "@/lib/bundles/snapshot";
import { decide, decisionView, type Decision } from "@/lib/enforcement/decide";

/** Decisions a remedy's impact replays at most (the newest of its window). */
export const REMEDY_IMPACT_MAX = 50_000;
const CHUNK = 5_000;
const MAX_EXAMPLES = 10;

export interface RemedyImpactExample {
  id: string;
  at: string;
  tenantId: string | null;
  tool: string;
  user: string | null;
  client: string | null;
  before: Pick<Decision, "decision" | "reason">;
  after: Pick<Decision, "decision" | "reason">;
}

export interface RemedyImpact {
  serverId: string;
  since: string;
  /** Decisions of the window replayed against the registry as it is and as the remedy leaves it. */
  replayed: number;
  unchanged: number;
  allowToDeny: number;
  denyToAllow: number;
  /** Flips that may come from an argument the agent masked: counted apart, never guessed. */
  uncertain: number;
  /** The window held more decisions than were replayed (the newest were). */
  limited: boolean;
  /** Calls the remedy would stop, grouped by tool. */
  stoppedByTool: { tool: string; calls: number }[];
  /** Examples of calls it would stop (of tenants the caller reads). */
  examples: RemedyImpactExample[];
  /** Compile problems of the draft with the remedy applied (then nothing was replayed). */
  issues: string[];
  tookMs: number;
}

/**
 * The impact of a registry change on one server's recent traffic: the
 * server's draft as it is and with `change` applied are compiled (the same
 * compiler as publishing) and every tools/call decision of the window is
 * decided against both with `decide()` (lib/enforcement/decide.ts), with the
 * live state (revocations, client approval, drift) as it stands on both sides.
 * Only the change itself can make a difference. `visible` says which tenants'
 * decisions may be shown as examples.
 */
export async function remedyImpact(
  db: Db,
  opts: { serverId: string; since: Date; change: (snap: RegistrySnapshot) => RegistrySnapshot; tenantId?: string; visible: (tenantId: string | null) => boolean },
): Promise<RemedyImpact> {
  const t0 = performance.now();
  const snap = await loadSnapshot(db, [opts.serverId]);
  const manifest = { fleetId: "remedy", revision: 0, parentRevision: null, createdAt: new Date().toISOString() };
  const before = compileBundle(snap, manifest);
  const after = compileBundle(opts.change(structuredClone(snap)), manifest);
  const result: RemedyImpact = {
    serverId: opts.serverId,
    since: opts.since.toISOString(),
    replayed: 0,
    unchanged: 0,
    allowToDeny: 0,
    denyToAllow: 0,
    uncertain: 0,
    limited: false,
    stoppedByTool: [],
    examples: [],
    issues: [],
    tookMs: 0,
  };
  // Problems the draft already had are not the remedy's; new ones are.
  const known = new Set(before.issues.map((i) => i.message));
  const fresh = after.issues.filter((i) => !known.has(i.message));
  if (fresh.length || before.issues.length) {
    result.issues = (fresh.length ? fresh : before.issues).map((i) => `${i.policy ? `${i.policy.name}: ` : ""}${i.message}`);
    result.tookMs = Math.round(performance.now() - t0);
    return result;
  }
  const [b, a] = [await decisionInputs(db, before.content), await decisionInputs(db, after.content)];
  const [bv, av] = [decisionView(b.content), decisionView(a.content)];
  // A policy reading the time (or the whole context) makes the exact instant part of the memo key.
  const texts = [...Object.values(b.content.cedar.policies), ...Object.values(a.content.cedar.policies)];
  const readsTime = texts.some((t) => {
    const r = contextRead(t);
    return r.has("time") || r.has("*");
  });

  const stopped = new Map<string, number>();
  const memo = new Map<string, [Decision, Decision]>();
  let cursor: { at: Date; id: string } | null = null;
  let loaded = 0;
  for (;;) {
    const conds: (SQL | undefined)[] = [eq(decisions.serverId, opts.serverId), eq(decisions.method, "tools/call"), gte(decisions.at, opts.since)];
    if (opts.tenantId) conds.push(eq(decisions.tenantId, opts.tenantId));
    if (cursor) conds.push(or(lt(decisions.at, cursor.at), and(eq(decisions.at, cursor.at), lt(decisions.id, cursor.id))));
    const n = Math.min(CHUNK, REMEDY_IMPACT_MAX - loaded);
    if (n <= 0) {
      result.limited = true;
      break;
    }
    const rows = await db
      .select({
        id: decisions.id,
        at: decisions.at,
        tenantId: decisions.tenantId,
        tool: decisions.tool,
        userId: decisions.userId,
        clientId: decisions.clientId,
        scopes: decisions.scopes,
        args: decisions.args,
        context: decisions.context,
      })
      .from(decisions)
      .where(and(...conds))
      .orderBy(desc(decisions.at), desc(decisions.id))
      .limit(n);
    if (!rows.length) break;
    loaded += rows.length;
    const last = rows[rows.length - 1]!;
    cursor = { at: last.at, id: last.id };
    for (const d of rows) {
      if (!d.tenantId || !d.userId || !d.tool) continue;
      const c = d.context ?? {};
      const req = replayRequest({ ...d, serverId: opts.serverId, tenantId: d.tenantId, userId: d.userId });
      const key = JSON.stringify([req.principal, req.tool, req.args, c.ip ?? null, readsTime ? d.at.getTime() : 0]);
      let pair = memo.get(key);
      if (!pair) memo.set(key, (pair = [decide(bv, req, b.live), decide(av, req, a.live)]));
      result.replayed++;
      const [x, y] = pair;
      if (x.decision === y.decision) {
        result.unchanged++;
        continue;
      }
      if (maskedArgNames(d.args).length) {
        result.uncertain++;
        continue;
      }
      if (x.decision === "allow") {
        result.allowToDeny++;
        stopped.set(d.tool, (stopped.get(d.tool) ?? 0) + 1);
      } else result.denyToAllow++;
      if (result.examples.length < MAX_EXAMPLES && opts.visible(d.tenantId)) {
        result.examples.push({
          id: d.id,
          at: d.at.toISOString(),
          tenantId: d.tenantId,
          tool: d.tool,
          user: d.userId,
          client: d.clientId,
          before: { decision: x.decision, reason: x.reason },
          after: { decision: y.decision, reason: y.reason },
        });
      }
    }
    if (rows.length < n) break;
  }
  result.stoppedByTool = [...stopped].map(([tool, calls]) => ({ tool, calls })).sort((p, q) => q.calls - p.calls || p.tool.localeCompare(q.tool));
  result.tookMs = Math.round(performance.now() - t0);
  return result;
}
