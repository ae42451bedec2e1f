"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { PendingApprovalsCard } from "@/components/approvals/pending-card";
import { HealthTiles } from "@/components/overview/health-tiles";
import { useMe, useTenant } from "@/components/shell/context";
import { Badge, Card, EmptyState, ErrorBanner, PageHeader } from "@/components/ui";
import { TrailTable } from "@/components/trail/trail-table";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

type ServerRow = PublicServer & { toolCount: number; pendingCount: number };

export default function OverviewPage() {
  const me = useMe();
  const { tenantId } = useTenant();
  const tenant = me.tenants.find((t) => t.id === tenantId);
  const params = { tenantId: tenantId ?? undefined, pageSize: 100 };
  const servers = useQuery({ queryKey: keys.servers.list(params), queryFn: () => apiFetch<Page<ServerRow>>(`/servers${qs(params)}`) });
  const pending = (servers.data?.items ?? []).filter((s) => s.pendingCount > 0);
  const tools = (servers.data?.items ?? []).reduce((n, s) => n + s.toolCount, 0);

  return (
    <>
      <PageHeader title={tenant ? `Overview · ${tenant.name}` : "Overview"} description="What needs your attention across the MCP servers you govern." />
      {me.tenants.length === 0 ? (
        <EmptyState title="You are not a member of any tenant yet">
          {me.globalRole === "owner" ? "Create the first tenant to start registering MCP servers." : "Ask an owner or a tenant admin to add you to a tenant."}
        </EmptyState>
      ) : null}
      <ErrorBanner error={servers.error} />
      <PendingApprovalsCard tenantId={tenantId} />
      {me.tenants.length > 0 ? <HealthTiles tenantId={tenantId} /> : null}
      <div className="mb-6 grid grid-cols-1 gap-4 sm:grid-cols-3">
        <Tile label="Tenants" value={me.tenants.length} href="/tenants" />
        <Tile label="MCP servers" value={servers.data?.total ?? "…"} href="/servers" />
        <Tile label="Tools in catalogues" value={servers.data ? tools : "…"} href="/servers" />
      </div>
      <div className="grid grid-cols-1 gap-6 lg:grid-cols-2">
        <Card title="Tools pending review">
          {pending.length === 0 ? (
            <p className="text-sm text-slate-600">No tool is waiting for review. New or changed tools from an import appear here until an admin approves them.</p>
          ) : (
            <ul className="divide-y divide-slate-100 text-sm">
              {pending.map((s) => (
                <li key={s.id} className="flex items-center justify-between py-2">
                  <Link href={`/servers/${s.id}/tools?status=changed`} className="font-medium text-indigo-700 hover:underline">
                    {s.name}
                  </Link>
                  <Badge color="amber">{s.pendingCount} pending</Badge>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <Card
          title="Recent admin changes"
          actions={
            <Link href="/trail" className="text-sm text-indigo-700 hover:underline">
              All changes
            </Link>
          }
        >
          <TrailTable tenantId={tenantId} limit={8} compact />
        </Card>
      </div>
    </>
  );
}

function Tile({ label, value, href }: { label: string; value: number | string; href: string }) {
  return (
    <Link href={href} className="rounded-lg bg-white p-4 shadow-sm ring-1 ring-slate-200 hover:ring-indigo-300">
      <div className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</div>
      <div className="mt-1 text-2xl font-semibold text-slate-900">{value}</div>
    </Link>
  );
}
