"use client";

import { useQuery } from "@tanstack/react-query";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useEffect } from "react";
import { useMe, useTenant } from "@/components/shell/context";
import { ErrorBanner, SelectField } from "@/components/ui";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

/** Servers a tenant may use (the API caps a page at 100). */
export function useTenantServers(tenantId: string | null) {
  const params = { tenantId: tenantId ?? undefined, pageSize: 100 };
  return useQuery({
    queryKey: keys.servers.list(params),
    queryFn: () => apiFetch<Page<PublicServer>>(`/servers${qs(params)}`),
    enabled: Boolean(tenantId),
  });
}

/**
 * The tenant and server a page is about, kept in the URL (?tenant=&server=)
 * so a view can be shared. Defaults: the shell's tenant, else the first one;
 * the first server that tenant may use. Other query parameters are kept.
 */
export function usePolicyPair() {
  const me = useMe();
  const { tenantId: shellTenant } = useTenant();
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();

  const urlTenant = params.get("tenant");
  const tenantId = (urlTenant && me.tenants.some((t) => t.id === urlTenant) ? urlTenant : null) ?? shellTenant ?? me.tenants[0]?.id ?? null;
  const servers = useTenantServers(tenantId);
  const urlServer = params.get("server");
  const list = servers.data?.items ?? [];
  const serverId = urlServer && list.some((s) => s.id === urlServer) ? urlServer : (list[0]?.id ?? null);
  const server = list.find((s) => s.id === serverId) ?? null;
  // The URL names a server this tenant cannot use (or that is gone).
  const unknownServer = Boolean(urlServer && servers.data && !list.some((s) => s.id === urlServer));

  const replace = useCallback(
    (next: { tenant?: string | null; server?: string | null }) => {
      const s = new URLSearchParams(params.toString());
      for (const [k, v] of Object.entries(next)) {
        if (v) s.set(k, v);
        else s.delete(k);
      }
      const out = s.toString();
      router.replace(`${pathname}${out ? `?${out}` : ""}`, { scroll: false });
    },
    [params, pathname, router],
  );

  // Write the resolved defaults into the URL once known, so the address always names the pair shown.
  useEffect(() => {
    if (!tenantId || !servers.data) return;
    // A server the tenant cannot use stays in the address (and is reported) rather than being silently swapped.
    if (urlTenant !== tenantId) replace(unknownServer ? { tenant: tenantId } : { tenant: tenantId, server: serverId });
    else if (!unknownServer && serverId && urlServer !== serverId) replace({ server: serverId });
  }, [tenantId, serverId, urlTenant, urlServer, unknownServer, servers.data, replace]);

  return {
    tenantId,
    serverId: unknownServer ? null : serverId,
    server: unknownServer ? null : server,
    servers,
    unknownServer,
    urlServer,
    setTenant: (id: string) => replace({ tenant: id, server: null }),
    setServer: (id: string) => replace({ server: id }),
  };
}

export type PolicyPair = ReturnType<typeof usePolicyPair>;

/** The tenant and server selects. */
export function PairPicker({ pair }: { pair: PolicyPair }) {
  const me = useMe();
  const items = pair.servers.data?.items ?? [];
  return (
    <div className="space-y-2">
      <div className="flex flex-wrap items-end gap-3">
        <div className="w-64">
          <SelectField label="For tenant" value={pair.tenantId ?? ""} onChange={(e) => pair.setTenant(e.target.value)} disabled={me.tenants.length === 0}>
            {me.tenants.length === 0 ? <option value="">No tenant</option> : null}
            {me.tenants.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
                {t.status === "disabled" ? " (disabled)" : ""}
              </option>
            ))}
          </SelectField>
        </div>
        <div className="w-72">
          <SelectField
            label="On MCP server"
            value={pair.serverId ?? ""}
            onChange={(e) => pair.setServer(e.target.value)}
            disabled={!items.length}
            hint={pair.servers.isPending && pair.tenantId ? "Loading servers…" : undefined}
          >
            {!items.length ? <option value="">{pair.servers.isPending ? "Loading…" : "No server"}</option> : null}
            {pair.unknownServer ? <option value="">Choose a server</option> : null}
            {items.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </SelectField>
        </div>
      </div>
      <ErrorBanner error={pair.servers.error} />
      {pair.unknownServer ? (
        <p role="alert" className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
          The server in the address (<code className="font-mono text-xs">{pair.urlServer}</code>) is not one this tenant may use, or it no longer exists. Choose a server above.
        </p>
      ) : null}
    </div>
  );
}
