"use client";

import { useMe } from "@/components/shell/context";
import { Badge, Button, Card, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { decideClient, refreshMetadata, setApproval, useClients, useGrantsWrite, type ClientRow } from "./queries";

const registrationLabels: Record<ClientRow["registration"], string> = {
  dynamic: "Dynamic registration",
  metadata_document: "Metadata document",
  static: "Pre-registered",
  unknown: "Unknown",
};
const statusColor = { pending: "amber", approved: "green", blocked: "red" } as const;

/** A tenant's OAuth clients, the "require approval" switch, and Approve / Block per client. */
export function ClientsTable({ tenantId }: { tenantId: string }) {
  const me = useMe();
  const canWrite = me.globalRole === "owner" || me.tenants.find((t) => t.id === tenantId)?.role === "admin";
  const list = useClients(tenantId);
  const toggle = useGrantsWrite(setApproval);
  const decide = useGrantsWrite(decideClient);
  const refresh = useGrantsWrite(refreshMetadata);
  const required = list.data?.requireClientApproval ?? false;
  const readOnly = canWrite ? undefined : "Your role in this tenant can read clients but not change them";

  return (
    <div className="space-y-4">
      <Card title="Client approval">
        <label className="flex items-start gap-3 text-sm text-slate-700">
          <input
            type="checkbox"
            className="mt-1 h-4 w-4"
            checked={required}
            disabled={!canWrite || toggle.isPending || !list.data}
            title={readOnly}
            onChange={(e) => toggle.mutate({ tenantId, requireClientApproval: e.target.checked })}
            data-testid="require-approval"
          />
          <span>
            <span className="font-medium text-slate-900">Require client approval</span>
            <span className="block text-slate-600">
              When on, agents deny every call from a client an admin has not approved, with the reason &ldquo;client not approved&rdquo;. Clients still appear here the first time they call, so you can
              approve them. The change reaches every agent within about a second.
            </span>
          </span>
        </label>
        <div className="mt-2">
          <ErrorBanner error={toggle.error} />
        </div>
      </Card>
      <ErrorBanner error={list.error ?? decide.error ?? refresh.error} />
      {list.isPending ? (
        <p className="text-sm text-slate-500">Loading…</p>
      ) : (list.data?.items.length ?? 0) === 0 ? (
        <EmptyState title="No OAuth client seen yet">Clients appear here the first time an agent sees one of their tokens, or when you import grants that name them.</EmptyState>
      ) : (
        <Table head={["Name", "Client id", "Registration", "Redirect URIs", "First seen", "Last seen", "Status", ""]}>
          {list.data!.items.map((c) => (
            <tr key={c.id} data-testid={`client-row-${c.clientId}`}>
              <Td>{c.name || <span className="text-slate-400">unnamed</span>}</Td>
              <Td>
                <code className="break-all text-xs">{c.clientId}</code>
              </Td>
              <Td>{registrationLabels[c.registration]}</Td>
              <Td>
                {c.redirectUris.length ? (
                  <ul className="space-y-0.5">
                    {c.redirectUris.map((u) => (
                      <li key={u}>
                        <code className="break-all text-xs">{u}</code>
                      </li>
                    ))}
                  </ul>
                ) : (
                  <span className="text-slate-400">unknown</span>
                )}
              </Td>
              <Td className="whitespace-nowrap">
                <Time iso={c.firstSeenAt} />
              </Td>
              <Td className="whitespace-nowrap">
                <Time iso={c.lastSeenAt} />
              </Td>
              <Td>
                <span title={c.decidedBy ? `by ${c.decidedBy}` : undefined}>
                  <Badge color={statusColor[c.status]}>{c.status}</Badge>
                </span>
              </Td>
              <Td className="whitespace-nowrap">
                <span className="flex gap-1">
                  {c.status !== "approved" ? (
                    <Button variant="secondary" disabled={!canWrite || decide.isPending} title={readOnly} onClick={() => decide.mutate({ id: c.id, action: "approve" })}>
                      Approve
                    </Button>
                  ) : null}
                  {c.status !== "blocked" ? (
                    <Button variant="secondary" disabled={!canWrite || decide.isPending} title={readOnly} onClick={() => decide.mutate({ id: c.id, action: "block" })}>
                      Block
                    </Button>
                  ) : null}
                  {c.status !== "pending" ? (
                    <Button variant="ghost" disabled={!canWrite || decide.isPending} title={readOnly} onClick={() => decide.mutate({ id: c.id, action: "reset" })}>
                      Reset
                    </Button>
                  ) : null}
                  {c.registration === "metadata_document" ? (
                    <Button variant="ghost" busy={refresh.isPending} disabled={!canWrite} title={readOnly ?? "Fetch the client's metadata document again"} onClick={() => refresh.mutate({ id: c.id })}>
                      Refresh metadata
                    </Button>
                  ) : null}
                </span>
              </Td>
            </tr>
          ))}
        </Table>
      )}
    </div>
  );
}
