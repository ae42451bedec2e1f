"use client";

import { keepPreviousData, useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { PublicClient, PublicGrant, PublicRevocation } from "@/lib/grants/service";

export type GrantRow = PublicGrant;
export type ClientRow = PublicClient;
export type RevocationRow = PublicRevocation;

export interface GrantFilters {
  tenantId?: string;
  userId?: string;
  clientId?: string;
  serverId?: string;
}

/** React Query keys of grants, clients and revocations: any revocation or approval refreshes all three. */
export const grantKeys = {
  all: ["grants"] as const,
  list: (p: GrantFilters) => ["grants", "list", p] as const,
  clients: (tenantId: string) => ["grants", "clients", tenantId] as const,
  revocations: (tenantId?: string) => ["grants", "revocations", tenantId ?? null] as const,
};

type Paged<T> = { items: T[]; nextCursor: string | null };

export function useGrants(p: GrantFilters) {
  return useInfiniteQuery({
    queryKey: grantKeys.list(p),
    queryFn: ({ pageParam }) => apiFetch<Paged<GrantRow>>(`/grants${qs({ ...p, cursor: pageParam, limit: 50 })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    // While a changed filter loads, the rows shown stay mounted: an open revoke dialog is not torn down under the admin.
    placeholderData: keepPreviousData,
    // Usage moves as agents ship decisions.
    refetchInterval: 5000,
  });
}

export function useClients(tenantId: string | null) {
  return useQuery({
    queryKey: grantKeys.clients(tenantId ?? ""),
    queryFn: () => apiFetch<{ tenantId: string; requireClientApproval: boolean; items: ClientRow[] }>(`/clients${qs({ tenantId: tenantId ?? undefined })}`),
    enabled: Boolean(tenantId),
  });
}

export function useRevocations(tenantId?: string) {
  return useInfiniteQuery({
    queryKey: grantKeys.revocations(tenantId),
    queryFn: ({ pageParam }) => apiFetch<Paged<RevocationRow>>(`/revocations${qs({ tenantId, cursor: pageParam, limit: 50 })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
}

/** A write on grants or clients; on success every grants query refreshes. */
export function useGrantsWrite<V, R>(call: (v: V) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: call, onSuccess: () => qc.invalidateQueries({ queryKey: grantKeys.all }) });
}

export const revokeGrant = (v: { grantId: string; reason: string }) =>
  apiFetch<{ grantsRevoked: number }>(`/grants/${encodeURIComponent(v.grantId)}/revoke`, { method: "POST", body: { reason: v.reason } });
export const revokeAll = (v: { tenantId: string; userId?: string; clientId?: string; reason: string }) => apiFetch<{ grantsRevoked: number }>(`/revocations`, { method: "POST", body: v });
export const decideClient = (v: { id: string; action: "approve" | "block" | "reset" }) => apiFetch<ClientRow>(`/clients/${encodeURIComponent(v.id)}/${v.action}`, { method: "POST" });
export const refreshMetadata = (v: { id: string }) => apiFetch<ClientRow>(`/clients/${encodeURIComponent(v.id)}/metadata`, { method: "POST" });
export const setApproval = (v: { tenantId: string; requireClientApproval: boolean }) => apiFetch(`/clients/approval`, { method: "PUT", body: v });
