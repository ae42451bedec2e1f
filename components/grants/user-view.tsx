"use client";

import Link from "next/link";
import { useMe } from "@/components/shell/context";
import { Card, EmptyState, PageHeader } from "@/components/ui";
import { GrantsTable, type GrantFilterState } from "./grants-table";
import { revokeAll, useGrants, useGrantsWrite } from "./queries";
import { RevokeButton } from "./revoke-dialog";

/**
 * Everything one user delegated, across the tenants the viewer can read: a
 * summary, one "revoke all" per tenant, the grants (filterable by client and
 * server) and a link to the user's decisions.
 */
export function UserGrants({ userId, filter, onFilter }: { userId: string; filter: GrantFilterState; onFilter: (patch: Partial<GrantFilterState>) => void }) {
  const me = useMe();
  const all = useGrants({ userId });
  const revokeMany = useGrantsWrite(revokeAll);
  const rows = all.data?.pages.flatMap((p) => p.items) ?? [];
  const active = rows.filter((g) => g.status === "active");
  const tenants = [...new Set(rows.map((g) => g.tenantId))];
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  const canWrite = (id: string) => me.globalRole === "owner" || me.tenants.find((t) => t.id === id)?.role === "admin";
  const [iss, sub] = userId.includes("#") ? [userId.slice(0, userId.lastIndexOf("#")), userId.slice(userId.lastIndexOf("#") + 1)] : ["", userId];
  return (
    <>
      <PageHeader
        title={<span className="break-all">User {sub}</span>}
        description={
          <>
            Everything this user delegated to OAuth clients
            {iss ? (
              <>
                {" "}
                (issuer <code className="break-all text-xs">{iss}</code>)
              </>
            ) : null}
            , in every tenant you can read.{" "}
            <Link href={`/audit?user=${encodeURIComponent(userId)}`} className="text-indigo-700 hover:underline">
              Their decisions
            </Link>
            {" · "}
            <Link href="/grants" className="text-indigo-700 hover:underline">
              All grants
            </Link>
          </>
        }
      />
      <div className="mb-4 grid grid-cols-2 gap-3 sm:grid-cols-4" data-testid="user-summary">
        <Figure label="Active grants" value={all.data ? active.length : "…"} />
        <Figure label="Clients" value={all.data ? new Set(active.map((g) => g.clientId)).size : "…"} />
        <Figure label="Servers" value={all.data ? new Set(active.map((g) => g.serverId)).size : "…"} />
        <Figure label="Calls" value={all.data ? rows.reduce((n, g) => n + g.calls, 0).toLocaleString() : "…"} />
      </div>
      {all.hasNextPage ? <p className="mb-2 text-xs text-slate-500">Figures count the first {rows.length} grants; load more below to count the rest.</p> : null}
      {all.data && rows.length === 0 ? (
        <EmptyState title="No grant of this user">Grants appear as agents accept this user&apos;s tokens. Check the exact id (issuer#subject) as tokens carry it.</EmptyState>
      ) : null}
      {tenants.length ? (
        <Card title="Revoke everything" className="mb-4">
          <div className="flex flex-wrap gap-2">
            {tenants.map((t) => (
              <RevokeButton
                key={t}
                label={tenants.length > 1 ? `Revoke all in ${tenantName(t)}` : "Revoke all of this user"}
                title={`Revoke every grant of ${sub} in ${tenantName(t)}`}
                body={
                  <>
                    Every agent will refuse tokens of user <strong>{userId}</strong>, for any client and server of {tenantName(t)}, issued before now. New tokens issued later still work.
                  </>
                }
                disabled={!canWrite(t) || !active.some((g) => g.tenantId === t)}
                disabledReason={canWrite(t) ? "Nothing active to revoke" : "Your role in this tenant can read grants but not revoke them"}
                onRevoke={(reason) => revokeMany.mutateAsync({ tenantId: t, userId, reason })}
                testId={`revoke-user-${t}`}
              />
            ))}
          </div>
        </Card>
      ) : null}
      <GrantsTable tenantId={null} filter={{ ...filter, user: userId }} onFilter={onFilter} lockUser />
    </>
  );
}

function Figure({ label, value }: { label: string; value: number | string }) {
  return (
    <div className="rounded-lg bg-white px-3 py-2 shadow-sm ring-1 ring-slate-200">
      <div className="text-xs text-slate-500">{label}</div>
      <div className="text-lg font-semibold tabular-nums text-slate-900">{value}</div>
    </div>
  );
}
