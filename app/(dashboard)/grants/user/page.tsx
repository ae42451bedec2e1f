"use client";

import { Suspense } from "react";
import { TableSkeleton } from "@/components/grants/grants-table";
import { useGrantsParams } from "@/components/grants/url-state";
import { UserGrants } from "@/components/grants/user-view";
import { EmptyState } from "@/components/ui";
import { useSearchParams } from "next/navigation";

function UserView() {
  const id = useSearchParams().get("id") ?? "";
  const [p, set] = useGrantsParams();
  if (!id) return <EmptyState title="No user chosen">Open a user from the grants list to see everything they delegated.</EmptyState>;
  return <UserGrants userId={id} filter={p} onFilter={set} />;
}

export default function UserGrantsPage() {
  return (
    <Suspense fallback={<TableSkeleton />}>
      <UserView />
    </Suspense>
  );
}
