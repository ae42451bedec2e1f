"use client";

import { FindingsList } from "@/components/findings/findings-list";
import { ScoreCard } from "@/components/findings/score-card";
import { SettingsCard } from "@/components/findings/settings-card";
import { useMe, useTenant } from "@/components/shell/context";
import { PageHeader } from "@/components/ui";

export default function LeastPrivilegePage() {
  const { tenantId } = useTenant();
  const me = useMe();
  const sees = me.globalRole === "owner" || me.globalRole === "auditor";
  const canWrite = me.globalRole === "owner" || (tenantId !== null && me.tenants.find((t) => t.id === tenantId)?.role === "admin");
  return (
    <>
      <PageHeader
        title="Least privilege"
        description="What scopes, grants, credentials and agents allow, against what the decision log shows was used. Each finding shows its evidence and a remedy; a remedy that changes policy becomes a draft, with its impact on the same traffic, that you publish from the fleet page."
      />
      <div className="space-y-6">
        {tenantId ? <ScoreCard tenantId={tenantId} /> : <p className="text-sm text-slate-600">Choose a tenant (top of the navigation) to see its privilege score over time.</p>}
        <FindingsList tenantId={tenantId} />
        {tenantId || sees ? <SettingsCard tenantId={tenantId} canWrite={canWrite} /> : null}
      </div>
    </>
  );
}
