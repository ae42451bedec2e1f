import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { z } from "zod";
import type { BundleContent } from "./bundle";
import type { DecisionRequest, DecisionResult, PolicyEngine } from "./engine";

/**
 * Human approval of a call (issue 16): the pure parts shared by the agent,
 * the control plane and `decide()`. A policy forbid annotated
 * `@approval("<approver group>")` turns a call Cedar would otherwise allow
 * into one that waits for a person. What a person approves is one exact call,
 * bound by `callHash` (tenant, server, tool, user, client and the RFC 8785
 * canonical JSON of the arguments); "approve similar calls" covers any
 * arguments of the same (tenant, server, tool, user, client) for a while,
 * bound by `similarHash`. Approvals reach agents in the bundle's live section
 * `approvals` (lib/bundles/live.ts), so an agent decides alone and an agent
 * that has not learnt of an approval keeps refusing.
 */

/** JSON-RPC error of the 2025-11-25 revision: the request needs a URL-mode elicitation first. */
export const URL_ELICITATION_REQUIRED = -32042;

/** Bounds of the approval contract (agent report, live section, admin input). */
export const APPROVAL_LIMITS = {
  id: 64,
  hash: 64,
  tenantId: 100,
  serverId: 100,
  tool: 128,
  user: 256,
  client: 256,
  group: 100,
  groups: 20,
  policy: 200,
  policies: 50,
  reason: 500,
  /** The masked arguments shown to approvers, as UTF-8 JSON. */
  argsBytes: 16 * 1024,
  /** Longest "approve similar calls" window. */
  similarMinutes: 24 * 60,
} as const;

/** The parts of a call an approval is bound to. */
export interface ApprovalSubject {
  tenantId: string;
  serverId: string;
  tool: string;
  user: string;
  client: string;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** The hash one approval covers: this call exactly (a changed argument is another call). */
export function callHash(s: ApprovalSubject, args: Record<string, unknown> | null | undefined): string {
  const a = args && typeof args === "object" && !Array.isArray(args) ? args : {};
  return sha256(canonicalize({ v: 1, kind: "call", tenantId: s.tenantId, serverId: s.serverId, tool: s.tool, user: s.user, client: s.client, args: a }) ?? "");
}

/** The hash an "approve similar calls" approval covers: any arguments of the same tool, user and client. */
export function similarHash(s: ApprovalSubject): string {
  return sha256(canonicalize({ v: 1, kind: "similar", tenantId: s.tenantId, serverId: s.serverId, tool: s.tool, user: s.user, client: s.client }) ?? "");
}

/** One line of the bundle's live section `approvals`: a decided request, until a while after it stops counting. */
export interface BundleApproval {
  /** The approval request (apr_…). */
  id: string;
  tenantId: string;
  /** `callHash` (scope "call") or `similarHash` (scope "similar"). */
  hash: string;
  scope: "call" | "similar";
  status: "approved" | "rejected";
  /** Who decided (a name an admin can read, never a token). */
  decidedBy: string;
  reason: string;
  /** ISO time after which an approval no longer allows anything (a rejection, the request's expiry: it no longer answers). */
  expiresAt: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const text = (max: number) => z.string().max(max);

/**
 * The agent's report to the control plane (POST /api/v1/agent/approvals):
 * ONE schema, imported by the agent (agent/approval.ts) and the route.
 * "requested": a call waits for approval (idempotent per tenant and hash while
 * a request is open). "executed": an approved call was let through.
 */
export const approvalReport = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("requested"),
      tenantId: text(APPROVAL_LIMITS.tenantId).min(1),
      serverId: text(APPROVAL_LIMITS.serverId).min(1),
      tool: text(APPROVAL_LIMITS.tool).min(1),
      user: text(APPROVAL_LIMITS.user).min(1),
      client: text(APPROVAL_LIMITS.client).min(1),
      callHash: z.string().regex(HEX64),
      /** Arguments masked by the bundle's masking rules (lib/enforcement/masking.ts), for approvers to read. */
      args: z.record(z.string(), z.unknown()).refine((a) => new TextEncoder().encode(JSON.stringify(a)).length <= APPROVAL_LIMITS.argsBytes, "args too large"),
      /** The policies that asked for approval and the approver groups they name. */
      policies: z.array(text(APPROVAL_LIMITS.policy)).min(1).max(APPROVAL_LIMITS.policies),
      approvers: z.array(text(APPROVAL_LIMITS.group).min(1)).min(1).max(APPROVAL_LIMITS.groups),
      bundleRevision: z.number().int().min(0),
    })
    .strict(),
  z
    .object({
      kind: z.literal("executed"),
      approvalId: text(APPROVAL_LIMITS.id).min(1),
      tenantId: text(APPROVAL_LIMITS.tenantId).min(1),
      callHash: z.string().regex(HEX64),
      decisionId: z.string().max(36).optional(),
    })
    .strict(),
]);
export type ApprovalReport = z.infer<typeof approvalReport>;

/** The control plane's answer to a report. */
export const approvalReportAnswer = z.object({ id: z.string().max(APPROVAL_LIMITS.id), url: z.string().max(2048), expiresAt: z.string().max(40), status: z.string().max(20) });
export type ApprovalReportAnswer = z.infer<typeof approvalReportAnswer>;

interface ApprovalIndex {
  byHash: Map<string, BundleApproval[]>;
}
const indexes = new WeakMap<BundleContent, ApprovalIndex>();

function indexOf(content: BundleContent): ApprovalIndex {
  let ix = indexes.get(content);
  if (ix) return ix;
  const byHash = new Map<string, BundleApproval[]>();
  const list = (content as { approvals?: unknown }).approvals;
  if (Array.isArray(list)) {
    for (const a of list as BundleApproval[]) {
      if (!a || typeof a !== "object" || typeof a.hash !== "string" || typeof a.tenantId !== "string") continue;
      const l = byHash.get(a.hash);
      if (l) l.push(a);
      else byHash.set(a.hash, [a]);
    }
  }
  ix = { byHash };
  indexes.set(content, ix);
  return ix;
}

/** What the bundle's live section says of one call at one time. */
export type ApprovalLookup = { state: "approved"; approval: BundleApproval } | { state: "rejected"; approval: BundleApproval } | { state: "expired"; approval: BundleApproval } | { state: "none" };

/**
 * The approval that covers this call now, if any: an unexpired approval of
 * this exact call or of similar calls allows; otherwise the newest rejection
 * or expired approval gives the reason; otherwise none. When the newest
 * decision on the exact call is a rejection, it wins over an approval of
 * similar calls. An unparseable expiry
 * counts as expired (fail closed).
 */
export function lookupApproval(content: BundleContent, tenantId: string, call: string, similar: string, time: Date): ApprovalLookup {
  const ix = indexOf(content);
  const now = time.getTime();
  const mine = (h: string) => (ix.byHash.get(h) ?? []).filter((a) => a.tenantId === tenantId);
  const exact = mine(call);
  // The newest decision on this exact call counts (ids are time-ordered): a rejection, then a new request approved, allows.
  let newest: BundleApproval | undefined;
  for (const a of exact) if (!newest || a.id > newest.id) newest = a;
  // A rejection holds until the request's own expiry; a call retried after it files a new request.
  if (newest?.status === "rejected" && !(now >= Date.parse(newest.expiresAt))) return { state: "rejected", approval: newest };
  const candidates = [...exact.filter((a) => a.scope === "call"), ...mine(similar).filter((a) => a.scope === "similar")].filter((a) => a.status === "approved");
  let expired: BundleApproval | undefined;
  for (const a of candidates) {
    const until = Date.parse(a.expiresAt);
    if (!Number.isNaN(until) && now < until) return { state: "approved", approval: a };
    if (!expired || a.id > expired.id) expired = a;
  }
  return expired ? { state: "expired", approval: expired } : { state: "none" };
}

/** The approver groups named by an `@approval("…")` annotation value: one group, or several separated by commas. */
export function approverGroups(value: unknown): string[] {
  if (typeof value !== "string") return [];
  const out: string[] = [];
  for (const g of value.split(",")) {
    const t = g.trim();
    if (t && t.length <= APPROVAL_LIMITS.group && !out.includes(t)) out.push(t);
  }
  return out.slice(0, APPROVAL_LIMITS.groups);
}

/** What a decision says about approval (Decision.approval, lib/enforcement/decide.ts). */
export interface DecisionApproval {
  /** The `@approval` forbids that asked. */
  policies: string[];
  /** The approver groups they name (a member of any one may approve). */
  approvers: string[];
  /** The hash the approval must name: this exact call. */
  callHash: string;
  /** "required": no approval yet (the call waits); the others name the approval found. */
  status: "required" | "approved" | "rejected" | "expired";
  /** The approval request found (apr_…), when status is not "required". */
  id?: string;
  /** Status "approved": what it covers ("call": one execution, consumed by the agent, agent/approval.ts) and until when (ISO). */
  scope?: "call" | "similar";
  expiresAt?: string;
}

/** The decision shape `approvalStage` answers with (structurally decide.ts's Decision; kept here to avoid an import cycle). */
interface StageDecision {
  decision: "allow" | "deny";
  reason: string;
  determining: string[];
  errors: string[];
  stage: "approval" | "policy";
  stepUpScopes: string[];
  approval?: DecisionApproval;
}

const oneLine = (v: string, max = 200) => {
  // eslint-disable-next-line no-control-regex -- control characters never reach a reason
  const t = v.replace(/[\u0000-\u001f\u007f]/g, "?");
  return t.length > max ? `${t.slice(0, max)}…` : t;
};

/**
 * The approval stage of `decide()`, run on a Cedar deny: when every policy
 * that denied is an `@approval` forbid (any plain forbid, evaluation error or
 * argument type error: null, the deny stands) and, without those forbids, a
 * permit allows the call (otherwise: null, plain default deny), the call needs
 * approval. A tools/call is then allowed only with an unexpired approval of
 * this exact call (or of similar calls) in the bundle's live section, and
 * otherwise denied at stage "approval" naming the policies, the approver
 * groups and the call hash; a listing (list_tools) is allowed, since the tool
 * can be called once approved. Pure; reads `time` only.
 */
export function approvalStage(view: { readonly content: BundleContent; readonly engine: PolicyEngine }, q: DecisionRequest, r: DecisionResult, time: Date): StageDecision | null {
  if (r.decision !== "deny" || r.argument || r.errors.length || !r.determining.length) return null;
  const approvers: string[] = [];
  for (const id of r.determining) {
    const a = view.content.policies[id]?.approval;
    if (!a || !Array.isArray(a.approvers) || !a.approvers.length) return null;
    for (const g of a.approvers) if (typeof g === "string" && !approvers.includes(g)) approvers.push(g);
  }
  const policies = [...r.determining];
  const without = view.engine.decide(q, policies);
  if (without.decision !== "allow") return null;
  const base = { errors: [] as string[], stepUpScopes: [] as string[] };
  if (q.action !== "call_tool")
    return { ...base, decision: "allow", reason: `allowed by policy; calls need approval from ${approvers.join(" or ")}`, determining: without.determining, stage: "policy" };
  const subject: ApprovalSubject = { tenantId: q.tenantId, serverId: q.serverId, tool: q.tool, user: q.user, client: q.client };
  const hash = callHash(subject, q.args);
  const found = lookupApproval(view.content, q.tenantId, hash, similarHash(subject), time);
  const who = approvers.join(" or ");
  switch (found.state) {
    case "approved":
      return {
        ...base,
        decision: "allow",
        reason: `approved by ${oneLine(found.approval.decidedBy)} (${found.approval.id}${found.approval.scope === "similar" ? ", similar calls" : ""}) until ${found.approval.expiresAt}`,
        determining: without.determining,
        stage: "approval",
        approval: { policies, approvers, callHash: hash, status: "approved", id: found.approval.id, scope: found.approval.scope, expiresAt: found.approval.expiresAt },
      };
    case "rejected":
      return {
        ...base,
        decision: "deny",
        reason: `rejected by ${oneLine(found.approval.decidedBy)} (${found.approval.id})${found.approval.reason ? `: ${oneLine(found.approval.reason)}` : ""}`,
        determining: policies,
        stage: "approval",
        approval: { policies, approvers, callHash: hash, status: "rejected", id: found.approval.id },
      };
    case "expired":
      return {
        ...base,
        decision: "deny",
        reason: `the approval ${found.approval.id} expired at ${found.approval.expiresAt}; approval from ${who} is needed again`,
        determining: policies,
        stage: "approval",
        approval: { policies, approvers, callHash: hash, status: "expired", id: found.approval.id },
      };
    default:
      return {
        ...base,
        decision: "deny",
        reason: `this call needs approval from ${who} (${policies.join(", ")})`,
        determining: policies,
        stage: "approval",
        approval: { policies, approvers, callHash: hash, status: "required" },
      };
  }
}
