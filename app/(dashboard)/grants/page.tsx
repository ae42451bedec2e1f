"use client";

import { Suspense } from "react";
import { ClientsTable } from "@/components/grants/clients-table";
import { GrantsTable, TableSkeleton } from "@/components/grants/grants-table";
import { RevocationsTable } from "@/components/grants/revocations-table";
import { GRANT_TABS, useGrantsParams } from "@/components/grants/url-state";
import { useMe, useTenant } from "@/components/shell/context";
import { cx, EmptyState, PageHeader, SelectField } from "@/components/ui";

const labels = { grants: "Grants", clients: "Clients", revocations: "Revocations" } as const;

function GrantsView() {
  const me = useMe();
  const global = useTenant().tenantId;
  const [p, set] = useGrantsParams();
  const tenantId = p.tenantId;
  const pageTenant = p.tenant && p.tenant !== global ? me.tenants.find((t) => t.id === p.tenant) : undefined;
  return (
    <>
      <PageHeader
        title="Grants & clients"
        description="Who let which OAuth client act on which MCP server, learned from the tokens agents accept. Revoking a grant makes every agent refuse its tokens issued before now, within about a second."
      />
      {pageTenant ? (
        <p className="mb-3 text-sm text-slate-600" data-testid="page-tenant">
          Showing tenant <strong>{pageTenant.name}</strong> on this page only.{" "}
          <button type="button" className="text-indigo-700 hover:underline" onClick={() => set({ tenant: "" })}>
            Back to {me.tenants.find((t) => t.id === global)?.name ?? "all tenants"}
          </button>
        </p>
      ) : null}
      <div role="tablist" aria-label="Grants sections" className="mb-4 flex gap-6 overflow-x-auto border-b border-slate-200">
        {GRANT_TABS.map((t) => (
          <button
            key={t}
            role="tab"
            type="button"
            aria-selected={p.tab === t}
            onClick={() => set({ tab: t })}
            className={cx(
              "-mb-px border-b-2 px-1 pb-2.5 text-sm font-medium whitespace-nowrap focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600",
              p.tab === t ? "border-indigo-600 text-indigo-700" : "border-transparent text-slate-600 hover:border-slate-300 hover:text-slate-800",
            )}
          >
            {labels[t]}
          </button>
        ))}
      </div>
      <div role="tabpanel" aria-label={labels[p.tab]}>
        {p.tab === "grants" ? <GrantsTable tenantId={tenantId} filter={p} onFilter={set} /> : null}
        {p.tab === "revocations" ? <RevocationsTable tenantId={tenantId} /> : null}
        {p.tab === "clients" ? (
          tenantId ? (
            <ClientsTable tenantId={tenantId} />
          ) : me.tenants.length ? (
            <div className="max-w-sm">
              {/* Sets this page's tenant (in the address), never the global switcher. */}
              <SelectField label="Tenant" value="" onChange={(e) => set({ tenant: e.target.value })}>
                <option value="">Choose the tenant whose clients to show</option>
                {me.tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name}
                  </option>
                ))}
              </SelectField>
            </div>
          ) : (
            <EmptyState title="No tenant">OAuth clients are listed per tenant; you are not a member of any tenant yet.</EmptyState>
          )
        ) : null}
      </div>
    </>
  );
}

export default function GrantsPage() {
  return (
    <Suspense fallback={<TableSkeleton />}>
      <GrantsView />
    </Suspense>
  );
}
