"use client";

import { ApprovalsQueue } from "@/components/approvals/approvals-queue";
import { GroupsPanel } from "@/components/approvals/groups-panel";
import { useTenant } from "@/components/shell/context";
import { PageHeader } from "@/components/ui";

export default function ApprovalsPage() {
  const { tenantId } = useTenant();
  return (
    <>
      <PageHeader title="Approvals" description="Tool calls a policy holds until a person approves them. Approving or rejecting reaches every agent within about a second." />
      <div className="grid grid-cols-1 gap-6 xl:grid-cols-[2fr_1fr]">
        <ApprovalsQueue tenantId={tenantId} />
        {tenantId ? <GroupsPanel tenantId={tenantId} /> : <p className="text-sm text-slate-600">Choose a tenant to manage its approver groups.</p>}
      </div>
    </>
  );
}
