"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { PublicConnection } from "@/lib/connections/service";

export type ConnectionRow = PublicConnection;
export interface ConnectRequestView {
  id: string;
  serverId: string;
  serverName: string;
  tenantId: string;
  tenantName: string;
  user: string;
  status: "open" | "started" | "completed" | "expired";
  expiresAt: string;
}

/** React Query keys of upstream connections (brokered per-user OAuth). */
export const connectionKeys = {
  all: ["connections"] as const,
  list: (p: { view: "mine" | "all"; tenantId?: string; serverId?: string }) => ["connections", "list", p] as const,
  request: (id: string) => ["connections", "request", id] as const,
};

export function useConnections(p: { view: "mine" | "all"; tenantId?: string; serverId?: string }) {
  return useQuery({ queryKey: connectionKeys.list(p), queryFn: () => apiFetch<{ items: ConnectionRow[] }>(`/connections${qs(p)}`) });
}

export function useConnectRequest(id: string) {
  return useQuery({ queryKey: connectionKeys.request(id), queryFn: () => apiFetch<ConnectRequestView>(`/connections/requests/${encodeURIComponent(id)}`) });
}

/** Starts the authorization code flow and sends the browser to the upstream's authorization server. */
export function useStartConnect() {
  return useMutation({
    mutationFn: (id: string) => apiFetch<{ authorizationUrl: string }>(`/connections/requests/${encodeURIComponent(id)}/start`, { method: "POST" }),
    onSuccess: ({ authorizationUrl }) => window.location.assign(authorizationUrl),
  });
}

/** Disconnects one's own connection, or revokes one (admins). */
export function useEndConnection() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => apiFetch<ConnectionRow>(`/connections/${encodeURIComponent(id)}`, { method: "DELETE" }),
    onSuccess: () => qc.invalidateQueries({ queryKey: connectionKeys.all }),
  });
}
