"use client";

import { useQuery } from "@tanstack/react-query";
import { useMe } from "@/components/shell/context";
import { useEffect, useState } from "react";
import { Button, cx } from "@/components/ui";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";
import { RANGE_LABELS, type AuditFilter, type RangeKey } from "./filters";

const select = "block rounded-md border-0 px-2.5 py-1.5 text-sm text-slate-900 ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-inset focus:ring-indigo-600";

/** Servers the chosen tenant may use (all readable servers when no tenant is chosen), for the server select and labels. */
export function useAuditServers(tenantId: string) {
  const params = { tenantId: tenantId || undefined, pageSize: 100 };
  return useQuery({ queryKey: keys.servers.list(params), queryFn: () => apiFetch<Page<PublicServer>>(`/servers${qs(params)}`), retry: false });
}

/**
 * A debounced text filter that also follows the URL: an outside change (clear,
 * a link in the table) replaces what is typed.
 */
function TextFilter({ value, onChange, label, className }: { value: string; onChange: (v: string) => void; label: string; className?: string }) {
  const [v, setV] = useState(value);
  const [seen, setSeen] = useState(value);
  if (value !== seen) {
    setSeen(value);
    setV(value);
  }
  useEffect(() => {
    const t = setTimeout(() => v.trim() !== value && onChange(v.trim()), 300);
    return () => clearTimeout(t);
  }, [v, value, onChange]);
  return <input type="search" aria-label={label} placeholder={label} value={v} onChange={(e) => setV(e.target.value)} className={cx(select, className ?? "w-40")} />;
}

/** Every filter of the decision log; each change lands in the URL. */
export function FilterBar({ filter, onChange }: { filter: AuditFilter; onChange: (patch: Partial<AuditFilter>) => void }) {
  const me = useMe();
  const servers = useAuditServers(filter.tenant);
  const seesAll = me.globalRole === "owner" || me.globalRole === "auditor";
  const active = ["tenant", "server", "tool", "user", "client", "outcome", "revision", "policy", "q"].some((k) => filter[k as keyof AuditFilter]) || filter.range !== "24h";
  return (
    <form className="mb-4 space-y-2 rounded-lg bg-white p-3 shadow-sm ring-1 ring-slate-200" onSubmit={(e) => e.preventDefault()} aria-label="Decision filters">
      <div className="flex flex-wrap items-end gap-2">
        <label className="text-xs font-medium text-slate-600">
          Time
          <select aria-label="Time range" className={select} value={filter.range} onChange={(e) => onChange({ range: e.target.value as RangeKey })}>
            {(Object.keys(RANGE_LABELS) as RangeKey[]).map((k) => (
              <option key={k} value={k}>
                {RANGE_LABELS[k]}
              </option>
            ))}
          </select>
        </label>
        {filter.range === "custom" ? (
          <>
            <label className="text-xs font-medium text-slate-600">
              From
              <input type="datetime-local" aria-label="From" className={select} value={filter.from} onChange={(e) => onChange({ from: e.target.value })} />
            </label>
            <label className="text-xs font-medium text-slate-600">
              To
              <input type="datetime-local" aria-label="To" className={select} value={filter.to} onChange={(e) => onChange({ to: e.target.value })} />
            </label>
          </>
        ) : null}
        <label className="text-xs font-medium text-slate-600">
          Tenant
          <select aria-label="Tenant" className={select} value={filter.tenant} onChange={(e) => onChange({ tenant: e.target.value, server: "" })}>
            <option value="">{seesAll ? "All tenants" : "All my tenants"}</option>
            {me.tenants.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label className="text-xs font-medium text-slate-600">
          Server
          <select aria-label="Server" className={select} value={filter.server} onChange={(e) => onChange({ server: e.target.value })}>
            <option value="">All servers</option>
            {(servers.data?.items ?? []).map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
            {filter.server && !servers.data?.items.some((s) => s.id === filter.server) ? <option value={filter.server}>{filter.server}</option> : null}
          </select>
        </label>
        <label className="text-xs font-medium text-slate-600">
          Outcome
          <select aria-label="Outcome" className={select} value={filter.outcome} onChange={(e) => onChange({ outcome: e.target.value as AuditFilter["outcome"] })}>
            <option value="">Any outcome</option>
            <option value="allow">Allowed</option>
            <option value="deny">Denied</option>
            <option value="error">Error</option>
          </select>
        </label>
      </div>
      <div className="flex flex-wrap items-center gap-2">
        <TextFilter value={filter.tool} onChange={(v) => onChange({ tool: v })} label="Tool" />
        <TextFilter value={filter.user} onChange={(v) => onChange({ user: v })} label="User" />
        <TextFilter value={filter.client} onChange={(v) => onChange({ client: v })} label="Client" />
        <input
          type="number"
          min={0}
          aria-label="Bundle revision"
          placeholder="Revision"
          value={filter.revision}
          onChange={(e) => onChange({ revision: e.target.value })}
          className={cx(select, "w-28")}
        />
        <TextFilter value={filter.policy} onChange={(v) => onChange({ policy: v })} label="Policy id" />
        <TextFilter value={filter.q} onChange={(v) => onChange({ q: v })} label="Text in arguments" className="w-56" />
        {active ? (
          <Button variant="ghost" onClick={() => onChange({ range: "24h", from: "", to: "", tenant: "", server: "", tool: "", user: "", client: "", outcome: "", revision: "", policy: "", q: "" })}>
            Clear filters
          </Button>
        ) : null}
      </div>
      <p className="text-xs text-slate-500">Tool, user, client and policy id match exactly. Text in arguments is a substring search over the masked arguments: narrow the time range for speed.</p>
    </form>
  );
}
