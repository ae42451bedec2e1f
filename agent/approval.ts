import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import path from "node:path";
import { approvalReport, approvalReportAnswer, URL_ELICITATION_REQUIRED, type ApprovalReport, type ApprovalReportAnswer } from "@/lib/enforcement/approval";
import type { BundleContent } from "@/lib/enforcement/bundle";
import type { Decision } from "@/lib/enforcement/decide";
import { maskArgs } from "@/lib/enforcement/masking";

/**
 * The agent's side of human approval (issue 16). `decide()` answers a call
 * that waits for a person with stage "approval"; this module turns that into
 * the protocol's own terms and tells the control plane:
 *
 * - handshake era (2025-11-25): JSON-RPC error URLElicitationRequired
 *   (-32042) whose `data.elicitations` holds one URL-mode elicitation naming
 *   the approval page (`/approvals/<id>` on the control plane). The client
 *   shows it, and retries the identical call once the approver has decided.
 * - stateless era (2026-07-28): an input-required result (multi round-trip
 *   requests): `resultType: "input_required"` with the same URL-mode
 *   elicitation under `inputRequests.approval`, and a `requestState` the
 *   client echoes on its retry. The retry is decided afresh (by call hash,
 *   from the bundle's live section); `inputResponses` and the agent's own
 *   `requestState` are taken out before the call goes upstream.
 *
 * The agent files the request (POST /api/v1/agent/approvals, the shared
 * `approvalReport` schema) before it answers, so the page exists when the
 * user opens it. If the control plane cannot be reached the call is denied
 * as before (-32003, the reason says so): an agent that cannot file or learn
 * of an approval keeps refusing.
 */

/** How long a call waits for the control plane to file its request before it is refused. */
export const REPORT_TIMEOUT_MS = 3000;
/** Prefix of the agent's own `requestState` (any other state is the upstream's and passes untouched). */
export const REQUEST_STATE_PREFIX = "mandate-approval:";
const META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion";
const FIRST_STATELESS_VERSION = "2026-07-28";

export interface Reporter {
  controlPlaneUrl: string;
  agentKey: () => string | null;
  /** The fleet of the bundle this agent enforces: a call is filed by the agent whose bundle decided it (several agents may share a process in tests). */
  fleetId: () => string | null;
  /** Through the egress guard (lib/net/agent.ts; main passes the agent's own). */
  fetch?: FetchLike;
  log?: (m: string) => void;
  /** The agent's data directory: the approvals of one call it used are kept there (USED_FILE) across restarts. */
  dataDir?: string;
}

const reporters = new Set<Reporter>();
/** Approval ids whose execution this process already reported (bounded). */
const executed = new Set<string>();

/**
 * Where an agent files approval requests (agent/main.ts registers one per
 * running agent; the returned function unregisters it). Without one, calls
 * that need approval are refused with the reason.
 */
export function registerApprovalReporter(r: Reporter): () => void {
  if (r.dataDir) loadUsed(r.dataDir, r.log);
  reporters.add(r);
  return () => void reporters.delete(r);
}

/** Where an agent keeps the approvals of one call it has used (in its data directory). */
export const USED_FILE = "approvals-used.json";
/** Most unexpired used approvals kept; past it a further one-call approval is refused (fail closed) rather than forgotten. */
export const MAX_USED = 10_000;
/** Approval id (apr_…) → its expiry (ms): the approvals of one call this process let through. */
const used = new Map<string, number>();

function loadUsed(dataDir: string, log?: (m: string) => void): void {
  let raw: string;
  try {
    raw = readFileSync(path.join(dataDir, USED_FILE), "utf8");
  } catch {
    return; // none yet
  }
  try {
    const list = JSON.parse(raw) as unknown;
    if (!Array.isArray(list)) throw new Error("not a list");
    const now = Date.now();
    for (const e of list.slice(0, MAX_USED)) {
      if (Array.isArray(e) && typeof e[0] === "string" && e[0].length <= 64 && typeof e[1] === "number" && e[1] > now) used.set(e[0], e[1]);
    }
  } catch (err) {
    log?.(`${USED_FILE} unreadable (${err instanceof Error ? err.message : "error"}); used approvals start empty`);
  }
}

/** Writes the used approvals (temp file + rename, synchronously: before the call is forwarded). */
function saveUsed(dataDir: string): void {
  const file = path.join(dataDir, USED_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify([...used]), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Consumes an approval of one call (scope "call") as `decide()` allows it:
 * check and mark in one synchronous step, before the call is forwarded, so of
 * two identical calls at once exactly one runs. An approval already used
 * denies at stage "approval" (status "required": the call asks anew, the
 * reason says why). The mark is written to the agent's data directory before
 * the call goes on; if it cannot be, the call is refused. Approvals of
 * similar calls pass unchanged (many uses within their window). Returns the
 * decision to act on (and to record).
 */
export function consumeApproval(d: Decision, fleetId: string, now = Date.now()): Decision {
  const a = d.approval;
  if (d.decision !== "allow" || d.stage !== "approval" || !a?.id || a.scope === "similar") return d;
  const refuse = (reason: string): Decision => ({ ...d, decision: "deny", stage: "error", reason, determining: a.policies, approval: undefined });
  if (used.has(a.id)) {
    return {
      ...d,
      decision: "deny",
      reason: `the approval ${a.id} was already used; ask again: this call needs approval from ${a.approvers.join(" or ")} (${a.policies.join(", ")})`,
      determining: a.policies,
      approval: { policies: a.policies, approvers: a.approvers, callHash: a.callHash, status: "required" },
    };
  }
  for (const [id, until] of used) if (until <= now) used.delete(id);
  if (used.size >= MAX_USED) return refuse(`approval ${a.id}: too many approvals in use on this agent (${MAX_USED}); try again later`);
  const until = a.expiresAt ? Date.parse(a.expiresAt) : NaN;
  used.set(a.id, Number.isNaN(until) ? now + 24 * 60 * 60 * 1000 : until);
  let dir: string | undefined;
  for (const x of reporters) if (x.fleetId() === fleetId && x.dataDir) dir = x.dataDir;
  if (dir) {
    try {
      saveUsed(dir);
    } catch {
      used.delete(a.id);
      return refuse(`the use of approval ${a.id} could not be recorded on this agent; try again`);
    }
  }
  return d;
}

/** Files a report for the agent of this fleet; resolves to the answer, or null when the control plane did not take it in time. Never rejects. */
export async function fileReport(fleetId: string, report: ApprovalReport): Promise<ApprovalReportAnswer | null> {
  let r: Reporter | undefined;
  for (const x of reporters) if (x.fleetId() === fleetId) r = x;
  const key = r?.agentKey();
  if (!r || !key) return null;
  try {
    const body = approvalReport.parse(report);
    const res = await (r.fetch ?? DEFAULT_AGENT_EGRESS.controlPlane)(`${r.controlPlaneUrl}/api/v1/agent/approvals`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REPORT_TIMEOUT_MS),
    });
    if (!res.ok) {
      r.log?.(`approval report refused: HTTP ${res.status}`);
      await res.body?.cancel().catch(() => undefined);
      return null;
    }
    return approvalReportAnswer.parse(await res.json());
  } catch (err) {
    r.log?.(`approval report failed: ${err instanceof Error ? err.name : "error"}`);
    return null;
  }
}

type Id = string | number;
interface Message {
  jsonrpc: "2.0";
  id?: Id;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

/** Whether a request speaks the stateless era (its `_meta` names a 2026-07-28 or later revision; body-primary, as the SDK v2 classifies). */
export function isStateless(m: Pick<Message, "params">): boolean {
  const meta = m.params?._meta;
  const v = meta && typeof meta === "object" ? (meta as Record<string, unknown>)[META_PROTOCOL_VERSION] : undefined;
  return typeof v === "string" && v >= FIRST_STATELESS_VERSION;
}

/** What the hook needs of the call being answered. */
export interface ApprovalCall {
  content: BundleContent;
  serverId: string;
  principal: { tenantId: string; user: string; client: string };
}

/**
 * The answer to a tools/call `decide()` held for approval (stage "approval",
 * decision "deny"). Returns the message at once; when the request must be
 * filed, a promise that fills in its page URL is pushed on `pending` (the
 * proxy awaits `pending` before it answers anything). A rejection answers
 * -32003 with the approver's reason.
 */
export function approvalAnswer(call: ApprovalCall, m: Message, d: Decision, decisionId: string, args: Record<string, unknown>, pending: Promise<void>[], deniedCode: number): Message {
  const a = d.approval!;
  const id = m.id as Id;
  const deniedAnswer = (reason: string): Message => ({
    jsonrpc: "2.0",
    id,
    error: { code: deniedCode, message: "Denied by policy", data: { decisionId, reason, approval: { status: a.status, ...(a.id ? { id: a.id } : {}), approvers: a.approvers } } },
  });
  if (a.status === "rejected") return deniedAnswer(d.reason);
  const tool = typeof m.params?.name === "string" ? m.params.name : "";
  const stateless = isStateless(m);
  // Filled in once the control plane has filed the request; until then a plain denial.
  const answer: Message = deniedAnswer(`${d.reason}; the approval request could not be filed, try again`);
  const masked = maskArgs(args, call.content.masking ?? [], call.serverId, tool).args as Record<string, unknown>;
  pending.push(
    fileReport(call.content.manifest.fleetId, {
      kind: "requested",
      tenantId: call.principal.tenantId,
      serverId: call.serverId,
      tool,
      user: call.principal.user,
      client: call.principal.client,
      callHash: a.callHash,
      args: masked ?? {},
      policies: a.policies,
      approvers: a.approvers,
      bundleRevision: call.content.manifest.revision,
    }).then((filed) => {
      if (!filed) return;
      const message = `${d.reason}. Open the approval page; once an approver has approved it, call again with the same arguments (request ${filed.id}, waits until ${filed.expiresAt}).`;
      const elicitation = { mode: "url", elicitationId: filed.id, url: filed.url, message };
      delete answer.error;
      if (stateless) {
        answer.result = {
          resultType: "input_required",
          inputRequests: { approval: { method: "elicitation/create", params: elicitation } },
          requestState: `${REQUEST_STATE_PREFIX}${filed.id}`,
          _meta: { "io.mandate/decisionId": decisionId },
        };
      } else {
        answer.error = {
          code: URL_ELICITATION_REQUIRED,
          message: "This call needs a person's approval",
          data: { elicitations: [elicitation], decisionId, approval: { id: filed.id, approvers: a.approvers, expiresAt: filed.expiresAt } },
        };
      }
    }),
  );
  return answer;
}

/** Prefix of the agent's `requestState` when a call waits for the user to connect an upstream (brokered per-user OAuth, agent/connections.ts). */
export const CONNECT_STATE_PREFIX = "mandate-connect:";

/**
 * The answer to a call whose user must first connect the upstream (brokered
 * per-user OAuth): the same URL-mode elicitation as an approval, pointing at
 * the control plane's connect page (`/connect/<cnr_…>`), as -32042 in the
 * handshake era or an input-required result in 2026-07-28. The client
 * retries the same call once the user has connected.
 */
export function connectAnswer(id: Id | null, request: { requestId: string; url: string; expiresAt: string; reason: string }, stateless: boolean): Message {
  const again = request.reason === "none" ? "" : ` (your earlier connection is ${request.reason})`;
  const message = `This server acts upstream with your own account${again}. Open the link, sign in and allow access, then call again (link valid until ${request.expiresAt}).`;
  const elicitation = { mode: "url", elicitationId: request.requestId, url: request.url, message };
  if (stateless) {
    return {
      jsonrpc: "2.0",
      id: id as Id,
      result: { resultType: "input_required", inputRequests: { connect: { method: "elicitation/create", params: elicitation } }, requestState: `${CONNECT_STATE_PREFIX}${request.requestId}` },
    };
  }
  return {
    jsonrpc: "2.0",
    id: id as Id,
    error: {
      code: URL_ELICITATION_REQUIRED,
      message: "Connect your upstream account first",
      data: { elicitations: [elicitation], connect: { id: request.requestId, reason: request.reason, expiresAt: request.expiresAt } },
    },
  };
}

/**
 * A tools/call `decide()` allowed: the agent's own retry fields are taken out
 * of the request before it goes upstream, and an approved call's execution is
 * reported (once per approval in this process, in the background).
 */
export function approvalAllowed(call: ApprovalCall, m: Message, d: Decision, decisionId: string): void {
  const params = m.params;
  if (params && typeof params.requestState === "string" && (params.requestState.startsWith(REQUEST_STATE_PREFIX) || params.requestState.startsWith(CONNECT_STATE_PREFIX))) {
    delete params.requestState;
    delete params.inputResponses;
  }
  const a = d.approval;
  if (d.stage !== "approval" || !a?.id || executed.has(a.id)) return;
  if (executed.size >= 10_000) executed.clear();
  executed.add(a.id);
  void fileReport(call.content.manifest.fleetId, { kind: "executed", approvalId: a.id, tenantId: call.principal.tenantId, callHash: a.callHash, decisionId });
}
