"use client";

import { useQuery } from "@tanstack/react-query";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { CedarSchemaInfo, PublicPolicy, PublicPolicyTest } from "./types";

/** The Cedar schema of a server: approved tools and typed arguments the editors offer. */
export function useCedarSchema(serverId: string | null) {
  return useQuery({
    queryKey: keys.policies.schema(serverId ?? ""),
    queryFn: () => apiFetch<CedarSchemaInfo>(`/servers/${encodeURIComponent(serverId!)}/cedar-schema`),
    enabled: Boolean(serverId),
  });
}

export function usePolicies(tenantId: string | null, serverId: string | null) {
  const p = { tenantId: tenantId ?? undefined, serverId: serverId ?? undefined };
  return useQuery({
    queryKey: keys.policies.list(p),
    queryFn: () => apiFetch<{ items: PublicPolicy[] }>(`/policies${qs(p)}`),
    enabled: Boolean(tenantId && serverId),
  });
}

export function usePolicyTests(tenantId: string | null, serverId: string | null) {
  const p = { tenantId: tenantId ?? undefined, serverId: serverId ?? undefined };
  return useQuery({
    queryKey: keys.policyTests.list(p),
    queryFn: () => apiFetch<{ items: PublicPolicyTest[] }>(`/policy-tests${qs(p)}`),
    enabled: Boolean(tenantId && serverId),
  });
}

export const policiesHref = (tenantId: string, serverId: string) => `/policies${qs({ tenant: tenantId, server: serverId })}`;
