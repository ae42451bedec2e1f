"use client";

import Link from "next/link";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, SearchBox, Table, Td, Time } from "@/components/ui";
import { ServerFilter } from "@/components/servers/server-filter";
import { revokeAll, revokeGrant, useGrants, useGrantsWrite, type GrantRow } from "./queries";
import { RevokeButton } from "./revoke-dialog";
import { userGrantsHref } from "./url-state";

/** Whether the viewer may revoke in this tenant (owners and the tenant's admins). */
function useWriter() {
  const me = useMe();
  return (tenantId: string) => me.globalRole === "owner" || me.tenants.find((t) => t.id === tenantId)?.role === "admin";
}

const READ_ONLY = "Your role in this tenant can read grants but not revoke them";

export interface GrantFilterState {
  user: string;
  client: string;
  server: string;
}

/**
 * Grants with usage; filter by user, client and server (the filters are the
 * caller's, e.g. the address bar); revoke one, several selected, or all of a
 * user or a client. `lockUser` hides the user filter (the one-user page).
 */
export function GrantsTable({ tenantId, filter, onFilter, lockUser }: { tenantId: string | null; filter: GrantFilterState; onFilter: (patch: Partial<GrantFilterState>) => void; lockUser?: boolean }) {
  const me = useMe();
  const canWrite = useWriter();
  const { user: userId, client: clientId, server: serverId } = filter;
  const filters = { tenantId: tenantId ?? undefined, userId: userId || undefined, clientId: clientId || undefined, serverId: serverId || undefined };
  const list = useGrants(filters);
  const revokeOne = useGrantsWrite(revokeGrant);
  const revokeMany = useGrantsWrite(revokeAll);
  const rows = list.data?.pages.flatMap((p) => p.items) ?? [];
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  const filtered = Boolean((userId && !lockUser) || clientId || serverId);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  // Only rows still shown, active and revocable count: a selection never acts on something off screen.
  const selectable = rows.filter((g) => g.status === "active" && canWrite(g.tenantId));
  const chosen = selectable.filter((g) => selected.has(g.id));
  const toggle = (id: string, on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(id);
      else n.delete(id);
      return n;
    });
  const allOn = selectable.length > 0 && chosen.length === selectable.length;

  const revokeChosen = async (reason: string) => {
    const failed: string[] = [];
    for (const g of chosen) {
      try {
        await revokeOne.mutateAsync({ grantId: g.id, reason });
      } catch (e) {
        failed.push(`${g.userId} → ${g.clientName || g.clientId}: ${e instanceof Error ? e.message : "failed"}`);
      }
    }
    setSelected(new Set());
    if (failed.length) throw new Error(`Revoked ${chosen.length - failed.length} of ${chosen.length}. Not revoked: ${failed.join("; ")}`);
  };

  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-end gap-2">
        {lockUser ? null : <SearchBox value={userId} onChange={(v) => onFilter({ user: v.trim() })} placeholder="User (exact id)" />}
        <SearchBox value={clientId} onChange={(v) => onFilter({ client: v.trim() })} placeholder="Client (exact id)" />
        <div className="w-full sm:w-64">
          <ServerFilter value={serverId} onChange={(v) => onFilter({ server: v })} tenantId={tenantId ?? undefined} />
        </div>
        {filtered ? (
          <Button variant="ghost" onClick={() => onFilter({ ...(lockUser ? {} : { user: "" }), client: "", server: "" })}>
            Clear filters
          </Button>
        ) : null}
      </div>
      {tenantId && ((userId && !lockUser) || clientId) ? (
        <div className="flex flex-wrap gap-2">
          {userId && !lockUser ? (
            <RevokeButton
              label={`Revoke all of user ${userId}`}
              title={`Revoke every grant of ${userId}`}
              body={
                <>
                  Every agent will refuse tokens of user <strong>{userId}</strong>, for any client and server of {tenantName(tenantId)}, issued before now. New tokens issued later still work.
                </>
              }
              disabled={!canWrite(tenantId)}
              disabledReason={READ_ONLY}
              onRevoke={(reason) => revokeMany.mutateAsync({ tenantId, userId, reason })}
              testId="revoke-user"
            />
          ) : null}
          {clientId ? (
            <RevokeButton
              label={`Revoke all of client ${clientId}`}
              title={`Revoke every grant to ${clientId}`}
              body={
                <>
                  Every agent will refuse tokens issued to client <strong>{clientId}</strong>, for any user and server of {tenantName(tenantId)}, issued before now.
                </>
              }
              disabled={!canWrite(tenantId)}
              disabledReason={READ_ONLY}
              onRevoke={(reason) => revokeMany.mutateAsync({ tenantId, clientId, reason })}
              testId="revoke-client"
            />
          ) : null}
        </div>
      ) : userId && !lockUser && !tenantId ? (
        <p className="text-xs text-slate-500">
          To revoke everything of this user, open{" "}
          <Link className="text-indigo-700 hover:underline" href={userGrantsHref(userId)}>
            their page
          </Link>{" "}
          (one button per tenant).
        </p>
      ) : clientId && !tenantId ? (
        <p className="text-xs text-slate-500">Choose a tenant (top of the navigation) to revoke every grant to a client.</p>
      ) : null}
      {chosen.length ? (
        <div className="sticky top-12 z-10 flex flex-wrap items-center gap-2 rounded-md bg-indigo-50 px-3 py-2 text-sm text-indigo-900 ring-1 ring-indigo-200 lg:top-2" data-testid="selection-bar">
          <span className="font-medium">{chosen.length} selected</span>
          <RevokeButton
            label={`Revoke ${chosen.length} selected`}
            title={`Revoke ${chosen.length} grant${chosen.length === 1 ? "" : "s"}`}
            body={
              <>
                Every agent will refuse, within about a second, the tokens issued before now of:
                <ul className="mt-2 max-h-40 list-disc overflow-y-auto pl-5">
                  {chosen.map((g) => (
                    <li key={g.id}>
                      <strong>{g.userId}</strong> for <strong>{g.clientName || g.clientId}</strong> on {g.serverName ?? g.serverId}
                    </li>
                  ))}
                </ul>
              </>
            }
            onRevoke={revokeChosen}
            testId="revoke-selected"
          />
          <Button variant="ghost" onClick={() => setSelected(new Set())}>
            Clear selection
          </Button>
        </div>
      ) : null}
      <ErrorBanner error={list.error} />
      {list.isPending ? (
        <TableSkeleton />
      ) : rows.length === 0 ? (
        <EmptyState title={filtered ? "No grant matches these filters" : "No delegated grant yet"}>
          {filtered
            ? "Clear a filter, or check the exact user and client ids as the tokens carry them."
            : "Grants appear here as agents accept tokens (user, client, server) and ship their decisions, or when you import them from your authorization server."}
        </EmptyState>
      ) : (
        <>
          <Table
            head={[
              <input
                key="all"
                type="checkbox"
                className="h-4 w-4"
                aria-label="Select every active grant shown"
                checked={allOn}
                disabled={selectable.length === 0}
                onChange={(e) => setSelected(e.target.checked ? new Set(selectable.map((g) => g.id)) : new Set())}
              />,
              "User",
              "Client",
              "Server",
              "Tenant",
              "Scopes",
              "Calls",
              "First seen",
              "Last seen",
              "Status",
              "",
            ]}
          >
            {rows.map((g) => (
              <GrantLine
                key={g.id}
                g={g}
                tenantName={tenantName(g.tenantId)}
                canWrite={canWrite(g.tenantId)}
                selected={selected.has(g.id)}
                onSelect={(on) => toggle(g.id, on)}
                onFilter={(k, v) => onFilter(k === "user" ? { user: v } : { client: v })}
                lockUser={lockUser}
                onRevoke={(reason) => revokeOne.mutateAsync({ grantId: g.id, reason })}
              />
            ))}
          </Table>
          {list.hasNextPage ? (
            <Button variant="secondary" busy={list.isFetchingNextPage} onClick={() => list.fetchNextPage()}>
              Load more
            </Button>
          ) : null}
        </>
      )}
    </div>
  );
}

/** Grey bars in the table's place while the first page loads. */
export function TableSkeleton({ rows = 4 }: { rows?: number }) {
  return (
    <div className="space-y-2 rounded-lg bg-white p-3 shadow-sm ring-1 ring-slate-200" aria-busy="true" aria-label="Loading">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} className="h-6 animate-pulse rounded bg-slate-100" />
      ))}
    </div>
  );
}

function GrantLine({
  g,
  tenantName,
  canWrite,
  selected,
  onSelect,
  onFilter,
  lockUser,
  onRevoke,
}: {
  g: GrantRow;
  tenantName: string;
  canWrite: boolean;
  selected: boolean;
  onSelect: (on: boolean) => void;
  onFilter: (k: "user" | "client", v: string) => void;
  lockUser?: boolean;
  onRevoke: (reason: string) => Promise<unknown>;
}) {
  return (
    <tr data-testid={`grant-row-${g.userId}`} className={selected ? "bg-indigo-50/60" : undefined}>
      <Td>
        {g.status === "active" && canWrite ? (
          <input type="checkbox" className="h-4 w-4" aria-label={`Select the grant of ${g.userId} to ${g.clientName || g.clientId}`} checked={selected} onChange={(e) => onSelect(e.target.checked)} />
        ) : null}
      </Td>
      <Td>
        {lockUser ? (
          <span className="break-all">{g.userId}</span>
        ) : (
          <span className="flex flex-col items-start">
            <button type="button" className="break-all text-left text-indigo-700 hover:underline" title="Show only this user's grants" onClick={() => onFilter("user", g.userId)}>
              {g.userId}
            </button>
            <Link href={userGrantsHref(g.userId)} className="text-xs text-slate-500 hover:text-indigo-700 hover:underline">
              Everything this user delegated
            </Link>
          </span>
        )}
      </Td>
      <Td>
        <button type="button" className="text-left text-indigo-700 hover:underline" title="Show only this client's grants" onClick={() => onFilter("client", g.clientId)}>
          {g.clientName ? <span className="font-medium">{g.clientName} </span> : null}
          <code className="break-all text-xs">{g.clientId}</code>
        </button>
      </Td>
      <Td>
        <Link href={`/servers/${g.serverId}`} className="text-indigo-700 hover:underline">
          {g.serverName ?? <code className="text-xs">{g.serverId}</code>}
        </Link>
      </Td>
      <Td>{tenantName}</Td>
      <Td>
        {g.scopes.length ? (
          <span className="flex flex-wrap gap-1">
            {g.scopes.map((s) => (
              <code key={s} className="rounded bg-slate-100 px-1 text-xs">
                {s}
              </code>
            ))}
          </span>
        ) : (
          <span className="text-slate-400">none</span>
        )}
        {g.source === "imported" ? <span className="ml-1 text-xs text-slate-500">(imported)</span> : null}
      </Td>
      <Td className="tabular-nums">{g.calls.toLocaleString()}</Td>
      <Td className="whitespace-nowrap">
        <Time iso={g.firstSeenAt} />
      </Td>
      <Td className="whitespace-nowrap">
        <Time iso={g.lastSeenAt} />
      </Td>
      <Td className="whitespace-nowrap">
        {g.status === "active" ? (
          <Badge color="green">active</Badge>
        ) : (
          <span title={g.revokedBy ? `by ${g.revokedBy}` : undefined}>
            <Badge color="red">revoked</Badge>{" "}
            <span className="text-xs text-slate-500">
              <Time iso={g.revokedAt} />
            </span>
          </span>
        )}
      </Td>
      <Td>
        {g.status === "active" ? (
          <RevokeButton
            label="Revoke"
            title="Revoke this grant"
            body={
              <>
                Every agent will refuse the tokens of user <strong>{g.userId}</strong> for client <strong>{g.clientName || g.clientId}</strong> on <strong>{g.serverName ?? g.serverId}</strong> issued
                before now, within about a second. The user must authorize the client again.
              </>
            }
            disabled={!canWrite}
            disabledReason={READ_ONLY}
            onRevoke={onRevoke}
            testId={`revoke-${g.id}`}
          />
        ) : null}
      </Td>
    </tr>
  );
}
