"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { useTenantServers } from "@/components/policies/pair-picker";
import { PolicyEditor } from "@/components/policies/policy-editor";
import { policiesHref } from "@/components/policies/queries";
import { useCanWrite, useMe } from "@/components/shell/context";
import { EmptyState, ErrorBanner } from "@/components/ui";

function NewPolicyView() {
  const me = useMe();
  const params = useSearchParams();
  const tenantId = params.get("tenant") ?? "";
  const serverId = params.get("server") ?? "";
  const kindParam = params.get("kind");
  const kind = kindParam === "cedar" ? "cedar" : kindParam === "rule" ? "rule" : null;
  const tenant = me.tenants.find((t) => t.id === tenantId);
  const canWrite = useCanWrite(tenant ? tenantId : null);
  const servers = useTenantServers(tenant ? tenantId : null);
  const server = servers.data?.items.find((s) => s.id === serverId);
  const back = tenant && serverId ? policiesHref(tenantId, serverId) : "/policies";
  const backLink = (
    <Link href={back} className="text-sm font-medium text-indigo-700 hover:underline">
      Back to policies
    </Link>
  );

  if (!tenant || !serverId || !kind) {
    return (
      <EmptyState title="Choose where the policy goes" action={backLink}>
        A policy belongs to one tenant and one MCP server. Start from the Policies page: pick the tenant and the server, then New rule or New Cedar policy.
      </EmptyState>
    );
  }
  if (!canWrite) {
    return (
      <EmptyState title="You cannot add policies to this tenant" action={backLink}>
        Only admins of {tenant.name} (and owners) can write its policies. You can still read them and run their tests.
      </EmptyState>
    );
  }
  if (servers.error) return <ErrorBanner error={servers.error} />;
  if (!servers.data) {
    return (
      <p role="status" className="text-sm text-slate-500">
        Loading…
      </p>
    );
  }
  if (!server) {
    return (
      <EmptyState title={`${tenant.name} may not use this server`} action={backLink}>
        The server does not exist, or it is not owned by or shared with {tenant.name}. Choose a server the tenant uses on the Policies page.
      </EmptyState>
    );
  }
  return <PolicyEditor key={`${tenantId}/${serverId}/${kind}`} tenantId={tenantId} serverId={serverId} kind={kind} />;
}

export default function NewPolicyPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading…</p>}>
      <NewPolicyView />
    </Suspense>
  );
}
