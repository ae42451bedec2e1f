"use client";

import { Suspense, useMemo } from "react";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { ExportButtons } from "@/components/audit/export-buttons";
import { useMe, useTenant } from "@/components/shell/context";
import { TrailTable } from "@/components/trail/trail-table";
import { PageHeader, SearchBox } from "@/components/ui";

const RANGES: Record<string, { label: string; ms: number | null }> = {
  all: { label: "Any time", ms: null },
  "24h": { label: "Last 24 hours", ms: 86_400_000 },
  "7d": { label: "Last 7 days", ms: 7 * 86_400_000 },
  "30d": { label: "Last 30 days", ms: 30 * 86_400_000 },
  "90d": { label: "Last 90 days", ms: 90 * 86_400_000 },
};
// Suggestions only: the field takes any exact target type.
const TARGET_TYPES = [
  "tenant",
  "user",
  "token",
  "server",
  "tool",
  "scope_mapping",
  "policy",
  "policy_test",
  "fleet",
  "enrollment_token",
  "agent",
  "bundle",
  "keyring",
  "vault_entry",
  "grant",
  "oauth_client",
  "revocation",
  "masking_rule",
  "settings",
  "decisions",
];
const select = "block rounded-md border-0 px-2.5 py-1.5 text-sm text-slate-900 ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-inset focus:ring-indigo-600";

function TrailView() {
  const me = useMe();
  const { tenantId: shellTenant } = useTenant();
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const get = (k: string) => params.get(k) ?? "";
  const set = (k: string, v: string) => {
    const s = new URLSearchParams(params.toString());
    if (v) s.set(k, v);
    else s.delete(k);
    router.replace(s.toString() ? `${pathname}?${s}` : pathname, { scroll: false });
  };
  // A range is anchored at the moment it was chosen (`since`); a link without it means any time.
  const range = RANGES[get("range")] && get("since") ? get("range") : "all";
  // The URL's tenant wins; else the shell's current tenant; "all" clears it.
  const tenant = get("tenant") === "all" ? "" : get("tenant") || shellTenant || "";
  // The range start is fixed when the range is chosen (not on every render), so paging stays stable.
  const since = get("since");
  const from = useMemo(() => (RANGES[range]!.ms && since && !Number.isNaN(Number(since)) ? new Date(Number(since) - RANGES[range]!.ms!).toISOString() : undefined), [range, since]);
  const filter = { tenantId: tenant || undefined, action: get("action") || undefined, actor: get("actor") || undefined, targetType: get("type") || undefined, from };
  return (
    <>
      <PageHeader
        title="Admin trail"
        description="Every change made in Mandate: who, what, when, and the values before and after. Newest first."
        actions={<ExportButtons path="/trail/export" params={() => filter} />}
      />
      <div className="mb-3 flex flex-wrap items-center gap-2">
        <select
          aria-label="Time range"
          className={select}
          value={range}
          onChange={(e) => {
            const s = new URLSearchParams(params.toString());
            s.set("range", e.target.value);
            s.set("since", String(Date.now()));
            router.replace(`${pathname}?${s}`, { scroll: false });
          }}
        >
          {Object.entries(RANGES).map(([k, r]) => (
            <option key={k} value={k}>
              {r.label}
            </option>
          ))}
        </select>
        <select aria-label="Tenant" className={select} value={tenant || "all"} onChange={(e) => set("tenant", e.target.value)}>
          <option value="all">All tenants</option>
          {me.tenants.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
        <input
          aria-label="Target type"
          placeholder="Target type"
          list="trail-target-types"
          className={`${select} w-40`}
          defaultValue={get("type")}
          onBlur={(e) => set("type", e.target.value.trim())}
          onKeyDown={(e) => e.key === "Enter" && set("type", e.currentTarget.value.trim())}
        />
        <datalist id="trail-target-types">
          {TARGET_TYPES.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <SearchBox value={get("action")} onChange={(v) => set("action", v.trim())} placeholder="Action (e.g. server.update or tool.)" />
        <SearchBox value={get("actor")} onChange={(v) => set("actor", v.trim())} placeholder="Who (e-mail or token)" />
      </div>
      <TrailTable {...filter} />
    </>
  );
}

export default function TrailPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading the trail…</p>}>
      <TrailView />
    </Suspense>
  );
}
