"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { PublicEntry } from "@/lib/vault/service";
import type { ConnectionResult } from "@/lib/vault/test-connection";
import type { EntryAgents } from "@/lib/vault/usage";

export type VaultEntry = PublicEntry;
export type VaultVersionRow = PublicEntry["versions"][number];

/** React Query keys of the vault, so every change invalidates the same lists. */
export const vaultKeys = {
  all: ["vault"] as const,
  list: (p: { serverId?: string; tenantId?: string }) => ["vault", "list", p] as const,
  byId: (id: string) => ["vault", id] as const,
  agents: (id: string) => ["vault", id, "agents"] as const,
};

export function useVaultEntries(p: { serverId?: string; tenantId?: string }) {
  return useQuery({ queryKey: vaultKeys.list(p), queryFn: () => apiFetch<{ items: VaultEntry[] }>(`/vault${qs(p)}`) });
}

export function useVaultEntry(id: string) {
  return useQuery({ queryKey: vaultKeys.byId(id), queryFn: () => apiFetch<VaultEntry>(`/vault/${id}`) });
}

/** The agents that may use an entry and the version each reported holding; refreshed every 15 s (a heartbeat's interval). */
export function useEntryAgents(id: string) {
  return useQuery({ queryKey: vaultKeys.agents(id), queryFn: () => apiFetch<EntryAgents>(`/vault/${id}/agents`), refetchInterval: 15_000 });
}

/** Test connection: not a write (nothing changes), so no list is refreshed. */
export function useTestConnection(id: string) {
  return useMutation({ mutationFn: () => apiFetch<ConnectionResult>(`/vault/${id}/test-connection`, { method: "POST", body: {} }) });
}

export type { ConnectionResult, EntryAgents };

/** A write on the vault (the answer never holds a secret); on success every vault query refreshes. */
export function useVaultWrite<V>(call: (v: V) => Promise<VaultEntry>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: call, onSuccess: () => qc.invalidateQueries({ queryKey: vaultKeys.all }) });
}

// Keyed by string: a kind added to the schema shows by its name until it gets a label here.
export const kindLabels: Record<string, string> = {
  api_key: "API key",
  bearer: "Bearer token",
  basic: "Basic auth",
  oauth_client_credentials: "OAuth client credentials",
  oauth_token_exchange: "Token exchange (RFC 8693, per user)",
  oauth_user_brokered: "Brokered per-user OAuth (each user connects)",
};

/** "header x-api-key" / "query api_key". */
export const placementLabel = (p: VaultEntry["placement"]) => `${p.in} ${p.name}`;

/** The fingerprint and last characters: all an admin ever sees of a secret. */
export const secretHint = (fp: string | null, last: string | null) => (fp ? `${fp}${last ? ` …${last}` : ""}` : "—");

/** What the secret of a kind is called in forms and messages. */
export const secretLabel = (kind: VaultEntry["kind"]) =>
  kind === "api_key" ? "API key" : kind === "bearer" ? "Token" : kind === "basic" ? "Password" : kind.startsWith("oauth") ? "Client secret" : "Secret";
