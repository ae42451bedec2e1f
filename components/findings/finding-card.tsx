"use client";

import Link from "next/link";
import { RevokeButton } from "@/components/grants/revoke-dialog";
import { useMe } from "@/components/shell/context";
import { Badge, Button, ConfirmButton, Time } from "@/components/ui";
import { directRemedy, useFindingWrite, type Finding, type PolicyRemedy } from "./queries";
import { RemedyButton } from "./remedy-dialog";

const severityColor = { high: "red", medium: "amber", low: "gray" } as const;

/** Owners and the finding's tenant admins write; auditors read. */
function useWriter() {
  const me = useMe();
  return (tenantId: string | null) => me.globalRole === "owner" || (tenantId !== null && me.tenants.find((t) => t.id === tenantId)?.role === "admin");
}

/** One finding: what, the evidence (counts, last use, example decisions), and its remedies. */
export function FindingCard({ f }: { f: Finding }) {
  const canWrite = useWriter()(f.tenantId);
  const direct = useFindingWrite(directRemedy);
  const ev = f.evidence;
  const lists = Object.entries(ev.lists).filter(([, v]) => v.length);
  const counts = Object.entries(ev.counts);
  return (
    <li className="rounded-lg border border-slate-200 bg-white p-4" data-testid="finding" data-kind={f.kind}>
      <div className="flex flex-wrap items-center gap-2">
        <Badge color={severityColor[f.severity]}>{f.severity}</Badge>
        <Badge color="blue">{f.kind.replace(/_/g, " ")}</Badge>
        {f.tenantName ? <span className="text-xs text-slate-500">{f.tenantName}</span> : <span className="text-xs text-slate-500">all fleets</span>}
      </div>
      <h3 className="mt-2 font-medium text-slate-900">{f.title}</h3>
      <p className="mt-1 text-sm text-slate-600">{f.detail}</p>
      <dl className="mt-3 grid grid-cols-2 gap-x-4 gap-y-1 text-xs text-slate-600 sm:grid-cols-4" data-testid="finding-evidence">
        <div>
          <dt className="font-medium text-slate-500">Subject</dt>
          <dd>
            {f.subject.href ? (
              <Link href={f.subject.href} className="text-indigo-700 hover:underline">
                {f.subject.label}
              </Link>
            ) : (
              f.subject.label
            )}
            {f.subject.serverName && f.subject.serverId ? (
              <>
                {" "}
                on{" "}
                <Link href={`/servers/${f.subject.serverId}`} className="text-indigo-700 hover:underline">
                  {f.subject.serverName}
                </Link>
              </>
            ) : null}
          </dd>
        </div>
        <div>
          <dt className="font-medium text-slate-500">Calls in {ev.windowDays} days</dt>
          <dd>{ev.calls.toLocaleString()}</dd>
        </div>
        <div>
          <dt className="font-medium text-slate-500">Last use</dt>
          <dd>{ev.lastUsedAt ? <Time iso={ev.lastUsedAt} /> : "none recorded"}</dd>
        </div>
        {counts.map(([k, v]) => (
          <div key={k}>
            <dt className="font-medium text-slate-500">{k.replace(/([A-Z])/g, " $1").toLowerCase()}</dt>
            <dd>{v}</dd>
          </div>
        ))}
        {lists.map(([k, v]) => (
          <div key={k} className="col-span-2">
            <dt className="font-medium text-slate-500">{k.replace(/([A-Z])/g, " $1").toLowerCase()}</dt>
            <dd className="break-words">{v.join(", ")}</dd>
          </div>
        ))}
        {ev.exampleDecisionIds.length ? (
          <div className="col-span-2 sm:col-span-4">
            <dt className="font-medium text-slate-500">Example decisions</dt>
            <dd className="flex flex-wrap gap-2">
              {ev.exampleDecisionIds.map((id) => (
                <Link key={id} href={`/audit/${id}`} className="font-mono text-indigo-700 hover:underline" data-testid="example-decision">
                  {id.slice(0, 13)}…
                </Link>
              ))}
            </dd>
          </div>
        ) : null}
      </dl>
      <div className="mt-3 flex flex-wrap gap-2">
        {f.remedies.map((r) => {
          if (r.changesPolicy) return <RemedyButton key={r.action} finding={f} action={r.action as PolicyRemedy} label={r.label} disabled={!canWrite} />;
          if (r.href)
            return (
              <Link key={r.action} href={r.href} className="inline-flex items-center rounded-md px-3 py-1.5 text-sm font-medium text-indigo-700 ring-1 ring-slate-300 hover:bg-slate-50">
                {r.label}
              </Link>
            );
          if (!r.api) return null;
          const api = r.api;
          if (r.action === "revoke_grant" || r.action === "revoke_client")
            return (
              <RevokeButton
                key={r.action}
                label={r.label}
                title={r.action === "revoke_grant" ? `Revoke the grant ${f.subject.label}` : `Revoke every grant to ${f.subject.label}`}
                body={
                  r.action === "revoke_grant" ? (
                    <>
                      Every agent will refuse, within about a second, the tokens of <strong>{f.subject.label}</strong> on {f.subject.serverName ?? "this server"} issued before now. New tokens issued
                      later still work.
                    </>
                  ) : (
                    <>
                      Every agent will refuse tokens issued to client <strong>{f.subject.label}</strong>, for any user and server of {f.tenantName}, issued before now.
                    </>
                  )
                }
                disabled={!canWrite}
                disabledReason="Your role in this tenant can read findings but not revoke"
                onRevoke={(reason) => direct.mutateAsync({ ...api, body: api.body ? { ...api.body, reason } : undefined })}
                testId={`remedy-${r.action}`}
              />
            );
          return (
            <ConfirmButton
              key={r.action}
              label={r.label}
              title={r.label}
              body={
                r.action === "retire_vault" ? (
                  <>Retires {f.subject.label} and every version of it: agents stop injecting it, and calls needing it fail until a new entry is stored.</>
                ) : r.action === "revoke_agent" ? (
                  <>The agent&apos;s key stops working at once; enroll a new agent to replace it.</>
                ) : (
                  <>The enrollment token stops working; it was never used.</>
                )
              }
              confirmLabel={r.action === "retire_vault" ? "Retire" : "Revoke"}
              disabled={!canWrite}
              onConfirm={() => direct.mutateAsync(api)}
            />
          );
        })}
        {!canWrite ? (
          <Button variant="ghost" disabled title="Your role can read findings but not remedy them">
            Read only
          </Button>
        ) : null}
      </div>
    </li>
  );
}
