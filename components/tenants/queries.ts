"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch } from "@/lib/client/api";
import type { PublicTenantIssuer } from "@/lib/tenants/trust";

export type TenantIssuer = PublicTenantIssuer;

/** React Query keys of a tenant's trust, so every change invalidates the same list. */
export const trustKeys = {
  all: ["tenant-issuers"] as const,
  list: (tenantId: string) => ["tenant-issuers", tenantId] as const,
};

export function useTenantIssuers(tenantId: string, enabled = true) {
  return useQuery({ queryKey: trustKeys.list(tenantId), queryFn: () => apiFetch<{ items: TenantIssuer[] }>(`/tenants/${tenantId}/issuers`), enabled });
}

/** A write on a tenant's trust; on success its list refreshes. */
export function useTrustWrite<V>(tenantId: string, call: (v: V) => Promise<unknown>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: call, onSuccess: () => qc.invalidateQueries({ queryKey: trustKeys.list(tenantId) }) });
}
