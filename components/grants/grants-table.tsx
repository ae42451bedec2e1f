"use client";

import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, SearchBox, Table, Td, Time } from "@/components/ui";
import { revokeAll, revokeGrant, useGrants, useGrantsWrite, type GrantRow } from "./queries";
import { RevokeButton } from "./revoke-dialog";
import { ServerFilter } from "@/components/servers/server-filter";

/** Whether the viewer may revoke in this tenant (owners and the tenant's admins). */
function useWriter() {
  const me = useMe();
  return (tenantId: string) => me.globalRole === "owner" || me.tenants.find((t) => t.id === tenantId)?.role === "admin";
}

const READ_ONLY = "Your role in this tenant can read grants but not revoke them";

/** Grants with usage; filter by user, client and server; revoke one, or all of a user or a client. */
export function GrantsTable({ tenantId }: { tenantId: string | null }) {
  const me = useMe();
  const canWrite = useWriter();
  const [userId, setUserId] = useState("");
  const [clientId, setClientId] = useState("");
  const [serverId, setServerId] = useState("");
  const filters = { tenantId: tenantId ?? undefined, userId: userId || undefined, clientId: clientId || undefined, serverId: serverId || undefined };
  const list = useGrants(filters);
  const revokeOne = useGrantsWrite(revokeGrant);
  const revokeMany = useGrantsWrite(revokeAll);
  const rows = list.data?.pages.flatMap((p) => p.items) ?? [];
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  const filtered = Boolean(userId || clientId || serverId);

  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-end gap-2">
        <SearchBox value={userId} onChange={setUserId} placeholder="User (exact id)" />
        <SearchBox value={clientId} onChange={setClientId} placeholder="Client (exact id)" />
        <div className="w-64">
          <ServerFilter value={serverId} onChange={setServerId} tenantId={tenantId ?? undefined} />
        </div>
      </div>
      {tenantId && (userId || clientId) ? (
        <div className="flex flex-wrap gap-2">
          {userId ? (
            <RevokeButton
              label={`Revoke all of user ${userId}`}
              title={`Revoke every grant of ${userId}`}
              body={<>Every agent will refuse tokens of user <strong>{userId}</strong>, for any client and server of {tenantName(tenantId)}, issued before now. New tokens issued later still work.</>}
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
              body={<>Every agent will refuse tokens issued to client <strong>{clientId}</strong>, for any user and server of {tenantName(tenantId)}, issued before now.</>}
              disabled={!canWrite(tenantId)}
              disabledReason={READ_ONLY}
              onRevoke={(reason) => revokeMany.mutateAsync({ tenantId, clientId, reason })}
              testId="revoke-client"
            />
          ) : null}
        </div>
      ) : (userId || clientId) && !tenantId ? (
        <p className="text-xs text-slate-500">Choose a tenant at the top of the page to revoke all grants of a user or a client.</p>
      ) : null}
      <ErrorBanner error={list.error} />
      {list.isPending ? (
        <p className="text-sm text-slate-500">Loading…</p>
      ) : rows.length === 0 ? (
        <EmptyState title={filtered ? "No grant matches these filters" : "No delegated grant yet"}>
          {filtered
            ? "Clear a filter, or check the exact user and client ids as the tokens carry them."
            : "Grants appear here as agents accept tokens (user, client, server) and ship their decisions, or when you import them from your authorization server."}
        </EmptyState>
      ) : (
        <>
          <Table head={["User", "Client", "Server", "Tenant", "Scopes", "Calls", "First seen", "Last seen", "Status", ""]}>
            {rows.map((g) => (
              <GrantLine key={g.id} g={g} tenantName={tenantName(g.tenantId)} canWrite={canWrite(g.tenantId)} onFilter={(k, v) => (k === "user" ? setUserId(v) : setClientId(v))} onRevoke={(reason) => revokeOne.mutateAsync({ grantId: g.id, reason })} />
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

function GrantLine({ g, tenantName, canWrite, onFilter, onRevoke }: { g: GrantRow; tenantName: string; canWrite: boolean; onFilter: (k: "user" | "client", v: string) => void; onRevoke: (reason: string) => Promise<unknown> }) {
  return (
    <tr data-testid={`grant-row-${g.userId}`}>
      <Td>
        <button type="button" className="text-left text-indigo-700 hover:underline" title="Show only this user's grants" onClick={() => onFilter("user", g.userId)}>
          {g.userId}
        </button>
      </Td>
      <Td>
        <button type="button" className="text-left text-indigo-700 hover:underline" title="Show only this client's grants" onClick={() => onFilter("client", g.clientId)}>
          {g.clientName ? <span className="font-medium">{g.clientName} </span> : null}
          <code className="break-all text-xs">{g.clientId}</code>
        </button>
      </Td>
      <Td>{g.serverName ?? <code className="text-xs">{g.serverId}</code>}</Td>
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
                Every agent will refuse the tokens of user <strong>{g.userId}</strong> for client <strong>{g.clientName || g.clientId}</strong> on <strong>{g.serverName ?? g.serverId}</strong> issued before now, within about a second. The user must authorize the client again.
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
