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
  fetch?: typeof fetch;
  log?: (m: string) => void;
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
  reporters.add(r);
  return () => void reporters.delete(r);
}

/** Files a report for the agent of this fleet; resolves to the answer, or null when the control plane did not take it in time. Never rejects. */
export async function fileReport(fleetId: string, report: ApprovalReport): Promise<ApprovalReportAnswer | null> {
  let r: Reporter | undefined;
  for (const x of reporters) if (x.fleetId() === fleetId) r = x;
  const key = r?.agentKey();
  if (!r || !key) return null;
  try {
    const body = approvalReport.parse(report);
    const res = await (r.fetch ?? fetch)(`${r.controlPlaneUrl}/api/v1/agent/approvals`, {
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
  const deniedAnswer = (reason: string): Message => ({ jsonrpc: "2.0", id, error: { code: deniedCode, message: "Denied by policy", data: { decisionId, reason, approval: { status: a.status, ...(a.id ? { id: a.id } : {}), approvers: a.approvers } } } });
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
        answer.error = { code: URL_ELICITATION_REQUIRED, message: "This call needs a person's approval", data: { elicitations: [elicitation], decisionId, approval: { id: filed.id, approvers: a.approvers, expiresAt: filed.expiresAt } } };
      }
    }),
  );
  return answer;
}

/**
 * A tools/call `decide()` allowed: the agent's own retry fields are taken out
 * of the request before it goes upstream, and an approved call's execution is
 * reported (once per approval in this process, in the background).
 */
export function approvalAllowed(call: ApprovalCall, m: Message, d: Decision, decisionId: string): void {
  const params = m.params;
  if (params && typeof params.requestState === "string" && params.requestState.startsWith(REQUEST_STATE_PREFIX)) {
    delete params.requestState;
    delete params.inputResponses;
  }
  const a = d.approval;
  if (d.stage !== "approval" || !a?.id || executed.has(a.id)) return;
  if (executed.size >= 10_000) executed.clear();
  executed.add(a.id);
  void fileReport(call.content.manifest.fleetId, { kind: "executed", approvalId: a.id, tenantId: call.principal.tenantId, callHash: a.callHash, decisionId });
}
