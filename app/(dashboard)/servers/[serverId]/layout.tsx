"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import type { ReactNode } from "react";
import { EmptyState, ErrorBanner, PageHeader } from "@/components/ui";
import { ServerProvider, useServerQuery } from "@/components/servers/server-context";
import { ServerTabs } from "@/components/servers/server-tabs";
import { ApiError } from "@/lib/client/api";

export default function ServerLayout({ children }: { children: ReactNode }) {
  const { serverId } = useParams<{ serverId: string }>();
  const server = useServerQuery(serverId);

  const crumbs = (
    <nav aria-label="Breadcrumb" className="mb-2 text-sm">
      <Link href="/servers" className="text-slate-500 hover:text-slate-700 hover:underline">
        Servers
      </Link>
      <span aria-hidden className="mx-1.5 text-slate-400">
        /
      </span>
    </nav>
  );

  const notFound = server.error instanceof ApiError && server.error.status === 404;
  if (!server.data || notFound) {
    return (
      <div>
        {crumbs}
        {notFound ? (
          <EmptyState
            title="Server not found (or in a tenant you cannot see)"
            action={
              <Link href="/servers" className="text-sm font-medium text-indigo-700 hover:underline">
                Back to servers
              </Link>
            }
          >
            It may have been deleted, or it belongs to a tenant you are not a member of.
          </EmptyState>
        ) : server.isError ? (
          <ErrorBanner error={server.error} />
        ) : (
          <p className="text-sm text-slate-500" role="status">
            Loading server…
          </p>
        )}
      </div>
    );
  }

  const s = server.data;
  return (
    <div>
      {crumbs}
      <PageHeader
        title={s.name}
        description={
          <span className="inline-flex flex-wrap items-center gap-2">
            <span className="text-xs font-medium uppercase tracking-wide text-slate-500">Resource</span>
            <code className="font-mono text-xs text-slate-700">{s.resourceUri}</code>
          </span>
        }
      />
      {server.isError ? (
        <div className="mb-4">
          <ErrorBanner error={server.error} />
        </div>
      ) : null}
      <ServerTabs serverId={s.id} />
      <ServerProvider value={s}>{children}</ServerProvider>
    </div>
  );
}
