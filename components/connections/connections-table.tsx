"use client";

import { Badge, ConfirmButton, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { useConnections, useEndConnection, type ConnectionRow } from "./queries";

const statusColor = { active: "green", broken: "red", disconnected: "gray", revoked: "red" } as const;

/** Upstream connections: the user's own (disconnect) or, for admins, a tenant's (revoke). */
export function ConnectionsTable({ view, tenantId }: { view: "mine" | "all"; tenantId?: string }) {
  const q = useConnections({ view, tenantId });
  const end = useEndConnection();
  const rows = q.data?.items ?? [];
  if (q.data && !rows.length)
    return <EmptyState title={view === "mine" ? "No connections yet" : "No connections in this tenant"}>A connection is made the first time a tool needs your upstream account.</EmptyState>;
  return (
    <>
      <ErrorBanner error={q.error} />
      <Table head={["Server", ...(view === "all" ? ["User", "Tenant"] : []), "Status", "Scope", "Connected", "Last refresh", ""]}>
        {rows.map((c: ConnectionRow) => (
          <tr key={c.id}>
            <Td>{c.serverName ?? c.serverId}</Td>
            {view === "all" ? (
              <>
                <Td className="font-mono text-xs">{c.user}</Td>
                <Td>{c.tenantName ?? c.tenantId}</Td>
              </>
            ) : null}
            <Td>
              <span title={c.endReason ?? undefined}>
                <Badge color={statusColor[c.status]}>{c.status}</Badge>
              </span>
            </Td>
            <Td className="font-mono text-xs">{c.scope}</Td>
            <Td>
              <Time iso={c.connectedAt} />
            </Td>
            <Td>
              <Time iso={c.refreshedAt} />
            </Td>
            <Td>
              {c.status === "active" ? (
                <ConfirmButton
                  label={view === "mine" ? "Disconnect" : "Revoke"}
                  title={view === "mine" ? "Disconnect this upstream account?" : "Revoke this user's connection?"}
                  body={
                    <p className="text-sm">
                      The stored tokens are erased and every agent stops using them within a second. {view === "mine" ? "You" : "The user"} will be asked to connect again on the next call.
                    </p>
                  }
                  confirmLabel={view === "mine" ? "Disconnect" : "Revoke"}
                  onConfirm={() => end.mutateAsync(c.id)}
                />
              ) : null}
            </Td>
          </tr>
        ))}
      </Table>
    </>
  );
}
