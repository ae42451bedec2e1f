"use client";

import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { useRevocations, type RevocationRow } from "./queries";

function what(r: RevocationRow) {
  if (r.grantId) return `Grant of ${r.userId} to ${r.clientId}`;
  if (r.userId) return `Every grant of user ${r.userId}`;
  return `Every grant to client ${r.clientId}`;
}

const upstreamLabel = { not_configured: ["not configured", "gray"], sent: ["delegated to agents", "blue"], failed: ["failed", "red"] } as const;

/** Revocation history: who revoked what, when, why, and what happened at the authorization server. */
export function RevocationsTable({ tenantId }: { tenantId: string | null }) {
  const me = useMe();
  const list = useRevocations(tenantId ?? undefined);
  const rows = list.data?.pages.flatMap((p) => p.items) ?? [];
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  if (list.error) return <ErrorBanner error={list.error} />;
  if (list.isPending) return <p className="text-sm text-slate-500">Loading…</p>;
  if (!rows.length) return <EmptyState title="Nothing revoked yet">Revocations of a grant, of a user or of a client are listed here with who made them and why.</EmptyState>;
  return (
    <div className="space-y-3">
      <Table head={["When", "Who", "What", "Server", "Tenant", "Tokens refused if issued before", "Reason", "Authorization server"]}>
        {rows.map((r) => {
          const [label, color] = upstreamLabel[r.upstreamRevocation?.status ?? "not_configured"];
          return (
            <tr key={r.id} data-testid="revocation-row">
              <Td className="whitespace-nowrap">
                <Time iso={r.createdAt} />
              </Td>
              <Td>{r.createdBy}</Td>
              <Td>{what(r)}</Td>
              <Td>{r.serverId ? (r.serverName ?? <code className="text-xs">{r.serverId}</code>) : <span className="text-slate-500">all servers</span>}</Td>
              <Td>{tenantName(r.tenantId)}</Td>
              <Td className="whitespace-nowrap">
                <Time iso={r.before} />
              </Td>
              <Td>{r.reason || <span className="text-slate-400">—</span>}</Td>
              <Td>
                <span title={r.upstreamRevocation?.detail}>
                  <Badge color={color}>{label}</Badge>
                </span>
              </Td>
            </tr>
          );
        })}
      </Table>
      {list.hasNextPage ? (
        <Button variant="secondary" busy={list.isFetchingNextPage} onClick={() => list.fetchNextPage()}>
          Load more
        </Button>
      ) : null}
    </div>
  );
}
