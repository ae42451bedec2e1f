"use client";

import { useState } from "react";
import { ClientsTable } from "@/components/grants/clients-table";
import { GrantsTable } from "@/components/grants/grants-table";
import { RevocationsTable } from "@/components/grants/revocations-table";
import { useMe, useTenant } from "@/components/shell/context";
import { cx, EmptyState, PageHeader, SelectField } from "@/components/ui";

const tabs = [
  { id: "grants", label: "Grants" },
  { id: "clients", label: "Clients" },
  { id: "revocations", label: "Revocations" },
] as const;
type Tab = (typeof tabs)[number]["id"];

export default function GrantsPage() {
  const me = useMe();
  const { tenantId, setTenantId } = useTenant();
  const [tab, setTab] = useState<Tab>("grants");
  return (
    <>
      <PageHeader
        title="Grants & clients"
        description="Who let which OAuth client act on which MCP server, learned from the tokens agents accept. Revoking a grant makes every agent refuse its tokens issued before now, within about a second."
      />
      <div role="tablist" aria-label="Grants sections" className="mb-4 flex gap-6 border-b border-slate-200">
        {tabs.map((t) => (
          <button
            key={t.id}
            role="tab"
            type="button"
            aria-selected={tab === t.id}
            onClick={() => setTab(t.id)}
            className={cx(
              "-mb-px border-b-2 px-1 pb-2.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600",
              tab === t.id ? "border-indigo-600 text-indigo-700" : "border-transparent text-slate-600 hover:border-slate-300 hover:text-slate-800",
            )}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel">
        {tab === "grants" ? <GrantsTable tenantId={tenantId} /> : null}
        {tab === "revocations" ? <RevocationsTable tenantId={tenantId} /> : null}
        {tab === "clients" ? (
          tenantId ? (
            <ClientsTable tenantId={tenantId} />
          ) : me.tenants.length ? (
            <div className="max-w-sm">
              <SelectField label="Tenant" value="" onChange={(e) => setTenantId(e.target.value || null)}>
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
