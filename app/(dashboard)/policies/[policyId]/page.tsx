"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useParams, useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { PolicyEditor } from "@/components/policies/policy-editor";
import type { PublicPolicy } from "@/components/policies/types";
import { EmptyState, ErrorBanner } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";

function PolicyView() {
  const { policyId } = useParams<{ policyId: string }>();
  const params = useSearchParams();
  const policy = useQuery({
    queryKey: keys.policies.byId(policyId),
    queryFn: () => apiFetch<PublicPolicy>(`/policies/${encodeURIComponent(policyId)}`),
    // The editor keeps its own copy while editing: no refetch on focus under the admin's hands.
    refetchOnWindowFocus: false,
  });

  if (policy.error instanceof ApiError && policy.error.status === 404) {
    return (
      <EmptyState
        title="Policy not found (or in a tenant you cannot see)"
        action={
          <Link href="/policies" className="text-sm font-medium text-indigo-700 hover:underline">
            Back to policies
          </Link>
        }
      >
        It may have been deleted, or it belongs to a tenant you are not a member of.
      </EmptyState>
    );
  }
  if (policy.error) return <ErrorBanner error={policy.error} />;
  if (!policy.data) {
    return (
      <p role="status" className="text-sm text-slate-500">
        Loading policy…
      </p>
    );
  }
  const p = policy.data;
  return <PolicyEditor key={p.id} tenantId={p.tenantId} serverId={p.serverId} kind={p.kind} policy={p} justCreated={params.get("created") === "1"} />;
}

export default function PolicyPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading policy…</p>}>
      <PolicyView />
    </Suspense>
  );
}
