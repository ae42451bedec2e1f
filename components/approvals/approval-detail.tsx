"use client";

import Link from "next/link";
import { useState } from "react";
import { Badge, Button, ErrorBanner, TextField, Time } from "@/components/ui";
import { useDecideApproval, type ApprovalRow } from "./queries";

const statusColor = { requested: "amber", approved: "green", executed: "green", rejected: "red", expired: "gray" } as const;

/** Why the viewer cannot decide a request, in words. */
function whyNot(a: ApprovalRow): string | null {
  if (a.canDecide) return null;
  if (a.status !== "requested") return `This request is ${a.status}.`;
  if (a.ownRequest) return "You made this call: someone else must approve it (four-eyes).";
  return `Only members of ${a.approvers.join(" or ")} may decide this request.`;
}

/** One request: the call as the agent saw it (arguments masked by the bundle's rules), and the approve / reject form. */
export function ApprovalDetail({ a, compact }: { a: ApprovalRow; compact?: boolean }) {
  const decide = useDecideApproval();
  const [reason, setReason] = useState("");
  const [similar, setSimilar] = useState(false);
  const [minutes, setMinutes] = useState(30);
  const blocked = whyNot(a);
  const run = (decision: "approve" | "reject") => decide.mutate({ id: a.id, decision, reason, ...(decision === "approve" && similar ? { similarMinutes: minutes } : {}) });
  return (
    <article className="space-y-3 text-sm text-slate-700" data-testid={`approval-${a.id}`} aria-label={`Approval request ${a.id}`}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-mono text-base font-semibold text-slate-900">{a.tool}</span>
        <span>on</span>
        <Link href={`/servers/${a.serverId}`} className="text-indigo-700 hover:underline">
          {a.serverName ?? a.serverId}
        </Link>
        <Badge color={statusColor[a.status]}>{a.status}</Badge>
        {compact ? (
          <Link href={`/approvals/${a.id}`} className="ml-auto text-indigo-700 hover:underline">
            Open
          </Link>
        ) : null}
      </div>
      <dl className="grid grid-cols-1 gap-x-4 gap-y-1 sm:grid-cols-[9rem_1fr]">
        <dt className="text-slate-500">Caller</dt>
        <dd className="break-all">{a.userId}</dd>
        <dt className="text-slate-500">Client</dt>
        <dd className="break-all">{a.clientId}</dd>
        <dt className="text-slate-500">Asked by policy</dt>
        <dd>
          {a.policies.map((p) => (
            <Link key={p} href={`/policies/${p.replace(/\.\d+$/, "")}`} className="mr-2 text-indigo-700 hover:underline">
              {p}
            </Link>
          ))}
        </dd>
        <dt className="text-slate-500">Approvers</dt>
        <dd>{a.approvers.join(", ")}</dd>
        <dt className="text-slate-500">Requested</dt>
        <dd>
          <Time iso={a.requestedAt} />
        </dd>
        <dt className="text-slate-500">{a.status === "requested" ? "Expires" : "Request expired"}</dt>
        <dd>
          <Time iso={a.expiresAt} />
        </dd>
        {a.decidedBy ? (
          <>
            <dt className="text-slate-500">Decided</dt>
            <dd>
              {a.status === "rejected" ? "Rejected" : "Approved"} by {a.decidedBy} at <Time iso={a.decidedAt} />
              {a.reason ? `: ${a.reason}` : ""}
              {a.approvalExpiresAt ? (
                <>
                  {" "}
                  ({a.scope === "similar" ? "similar calls" : "this call"} until <Time iso={a.approvalExpiresAt} />)
                </>
              ) : null}
            </dd>
          </>
        ) : null}
        {a.executedAt ? (
          <>
            <dt className="text-slate-500">Executed</dt>
            <dd>
              <Time iso={a.executedAt} />
            </dd>
          </>
        ) : null}
      </dl>
      <div>
        <p className="text-slate-500">Arguments (masked as in the decision log)</p>
        <pre className="mt-1 max-h-64 overflow-auto rounded bg-slate-50 p-2 font-mono text-xs">{JSON.stringify(a.args, null, 2)}</pre>
        <p className="mt-1 text-xs text-slate-500">
          Call hash <code className="break-all">{a.callHash}</code>: the approval covers exactly this call (same tool, arguments, caller and client).
        </p>
      </div>
      {blocked ? (
        <p className="rounded bg-slate-50 p-2 text-slate-600" data-testid="cannot-decide">
          {blocked}
        </p>
      ) : (
        <form className="space-y-3 rounded border border-slate-200 p-3" onSubmit={(e) => e.preventDefault()}>
          <TextField label="Reason" value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} hint="Shown to the caller on a rejection, and in the admin trail." />
          <div className="flex flex-wrap items-center gap-2">
            <input id={`similar-${a.id}`} type="checkbox" checked={similar} onChange={(e) => setSimilar(e.target.checked)} className="h-4 w-4" />
            <label htmlFor={`similar-${a.id}`}>Approve similar calls (this tool, caller and client, any arguments) for</label>
            <input
              aria-label="Minutes"
              type="number"
              min={1}
              max={1440}
              value={minutes}
              disabled={!similar}
              onChange={(e) => setMinutes(Number(e.target.value))}
              className="w-20 rounded border border-slate-300 px-2 py-1"
            />
            <span>minutes</span>
          </div>
          <ErrorBanner error={decide.error} />
          <div className="flex gap-2">
            <Button type="button" busy={decide.isPending} onClick={() => run("approve")}>
              Approve
            </Button>
            <Button type="button" variant="danger" busy={decide.isPending} onClick={() => run("reject")}>
              Reject
            </Button>
          </div>
        </form>
      )}
    </article>
  );
}
