"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useState } from "react";
import { useCanWrite, useMe, useTenant } from "@/components/shell/context";
import { Badge, EmptyState, ErrorBanner, PageHeader, Pager, SearchBox, Table, Td } from "@/components/ui";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

type ServerRow = PublicServer & { toolCount: number; pendingCount: number };

export default function ServersPage() {
  const me = useMe();
  const { tenantId } = useTenant();
  const [q, setQ] = useState("");
  const [page, setPage] = useState(1);
  const params = { tenantId: tenantId ?? undefined, q, page, pageSize: 25 };
  const list = useQuery({ queryKey: keys.servers.list(params), queryFn: () => apiFetch<Page<ServerRow>>(`/servers${qs(params)}`) });
  const canCreate = useCanWrite(tenantId) || me.tenants.some((t) => t.role === "admin" || t.role === "owner");
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  const newLink = (
    <Link href="/servers/new" className="rounded-md bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-indigo-500">
      Register server
    </Link>
  );
  return (
    <>
      <PageHeader title="MCP servers" description="Each MCP server is an OAuth protected resource. Register it, import its tools, and map scopes to tools." actions={canCreate ? newLink : null} />
      <div className="mb-3">
        <SearchBox value={q} onChange={(v) => (setQ(v), setPage(1))} placeholder="Search by name or resource URI" />
      </div>
      <ErrorBanner error={list.error} />
      {list.data && list.data.total === 0 && !q ? (
        <EmptyState title="No MCP server yet" action={canCreate ? newLink : undefined}>
          Register an MCP server with its canonical resource URI and upstream URL, then import its tool catalogue from the live server.
        </EmptyState>
      ) : (
        <>
          <Table head={["Name", "Resource URI", "Tenant", "Tools", "Scopes"]}>
            {(list.data?.items ?? []).map((s) => (
              <tr key={s.id} data-testid={`server-row-${s.name}`}>
                <Td>
                  <Link href={`/servers/${s.id}`} className="font-medium text-indigo-700 hover:underline">
                    {s.name}
                  </Link>
                </Td>
                <Td>
                  <code className="text-xs">{s.resourceUri}</code>
                </Td>
                <Td>
                  {tenantName(s.tenantId)}
                  {s.tenantIds.length > 1 ? <span className="ml-1 text-xs text-slate-500">+{s.tenantIds.length - 1} shared</span> : null}
                </Td>
                <Td>
                  {s.toolCount} {s.pendingCount ? <Badge color="amber">{s.pendingCount} pending review</Badge> : null}
                </Td>
                <Td>{s.scopes.length}</Td>
              </tr>
            ))}
          </Table>
          {list.data ? <Pager page={page} pageSize={25} total={list.data.total} onPage={setPage} /> : null}
        </>
      )}
    </>
  );
}
