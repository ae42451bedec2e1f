"use client";

import { Suspense } from "react";
import { AuditCharts } from "@/components/audit/charts";
import { DecisionTable } from "@/components/audit/decision-table";
import { ExportButtons } from "@/components/audit/export-buttons";
import { FilterBar, useAuditServers } from "@/components/audit/filter-bar";
import { apiParams, useAuditFilter } from "@/components/audit/filters";
import { GroupPanel } from "@/components/audit/group-panel";
import { SavedViews } from "@/components/audit/saved-views";
import { PageHeader } from "@/components/ui";

function AuditView() {
  const [filter, setFilter] = useAuditFilter();
  const servers = useAuditServers("");
  const serverNames = new Map((servers.data?.items ?? []).map((s) => [s.id, s.name]));
  return (
    <>
      <PageHeader
        title="Decision log"
        description="Every authorization decision agents made: who, which tool, the outcome and why. Arguments are shown as the agent masked them."
        actions={<ExportButtons path="/decisions/export" params={() => apiParams(filter)} />}
      />
      <FilterBar filter={filter} onChange={setFilter} />
      <SavedViews filter={filter} />
      <AuditCharts filter={filter} serverNames={serverNames} onFilter={setFilter} />
      <GroupPanel filter={filter} onFilter={setFilter} />
      <DecisionTable filter={filter} serverNames={serverNames} onFilter={setFilter} />
    </>
  );
}

export default function AuditPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading the decision log…</p>}>
      <AuditView />
    </Suspense>
  );
}
