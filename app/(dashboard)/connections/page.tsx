"use client";

import { useSearchParams } from "next/navigation";
import { Suspense } from "react";
import { ConnectionsTable } from "@/components/connections/connections-table";
import { useTenant } from "@/components/shell/context";
import { Card, PageHeader } from "@/components/ui";

/** Upstream connections (brokered per-user OAuth): the user's own, and a tenant's for those who administer its vault. */
export default function ConnectionsPage() {
  return (
    <Suspense>
      <Connections />
    </Suspense>
  );
}

function Connections() {
  const { tenantId } = useTenant();
  const sp = useSearchParams();
  const error = sp.get("error");
  return (
    <>
      <PageHeader
        title="Connections"
        description="Upstream accounts you connected for servers that act with each user's own account. Disconnecting erases the stored tokens; agents stop using them at once."
      />
      {sp.get("connected") ? <p className="mb-4 rounded bg-green-50 p-3 text-sm text-green-800">Connected. Call the tool again from your MCP client.</p> : null}
      {error ? <p className="mb-4 rounded bg-red-50 p-3 text-sm text-red-800">{error}</p> : null}
      <div className="space-y-6">
        <Card title="Your connections">
          <ConnectionsTable view="mine" />
        </Card>
        {tenantId ? (
          <Card title="All connections in this tenant (vault admins)">
            <ConnectionsTable view="all" tenantId={tenantId} />
          </Card>
        ) : null}
      </div>
    </>
  );
}
