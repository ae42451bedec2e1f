"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { PublicEntry } from "@/lib/vault/service";

export type VaultEntry = PublicEntry;
export type VaultVersionRow = PublicEntry["versions"][number];

/** React Query keys of the vault, so every change invalidates the same lists. */
export const vaultKeys = {
  all: ["vault"] as const,
  list: (p: { serverId?: string; tenantId?: string }) => ["vault", "list", p] as const,
  byId: (id: string) => ["vault", id] as const,
};

export function useVaultEntries(p: { serverId?: string; tenantId?: string }) {
  return useQuery({ queryKey: vaultKeys.list(p), queryFn: () => apiFetch<{ items: VaultEntry[] }>(`/vault${qs(p)}`) });
}

export function useVaultEntry(id: string) {
  return useQuery({ queryKey: vaultKeys.byId(id), queryFn: () => apiFetch<VaultEntry>(`/vault/${id}`) });
}

/** A write on the vault (the answer never holds a secret); on success every vault query refreshes. */
export function useVaultWrite<V>(call: (v: V) => Promise<VaultEntry>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: call, onSuccess: () => qc.invalidateQueries({ queryKey: vaultKeys.all }) });
}

export const kindLabels: Record<VaultEntry["kind"], string> = {
  api_key: "API key",
  bearer: "Bearer token",
  basic: "Basic auth",
  oauth_client_credentials: "OAuth client credentials",
  oauth_token_exchange: "Token exchange (RFC 8693, per user)",
};

/** "header x-api-key" / "query api_key". */
export const placementLabel = (p: VaultEntry["placement"]) => `${p.in} ${p.name}`;

/** The fingerprint and last characters: all an admin ever sees of a secret. */
export const secretHint = (fp: string | null, last: string | null) => (fp ? `${fp}${last ? ` …${last}` : ""}` : "—");
