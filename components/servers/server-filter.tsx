"use client";

import { useQuery } from "@tanstack/react-query";
import { SelectField } from "@/components/ui";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

/** A "Server" filter: every server the caller can read (optionally only those a tenant may use), or all. */
export function ServerFilter({ value, onChange, tenantId }: { value: string; onChange: (serverId: string) => void; tenantId?: string }) {
  const params = { pageSize: 100, ...(tenantId ? { tenantId } : {}) };
  const servers = useQuery({ queryKey: keys.servers.list(params), queryFn: () => apiFetch<Page<PublicServer>>(`/servers${qs(params)}`) });
  return (
    <SelectField label="Server" value={value} onChange={(e) => onChange(e.target.value)}>
      <option value="">All servers</option>
      {(servers.data?.items ?? []).map((s) => (
        <option key={s.id} value={s.id}>
          {s.name}
        </option>
      ))}
    </SelectField>
  );
}
