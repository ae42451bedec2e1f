"use client";

import { useQuery } from "@tanstack/react-query";
import { createContext, useContext } from "react";
import { apiFetch, keys } from "@/lib/client/api";
import type { Page, PublicServer, PublicTool } from "@/lib/client/types";

/** Loads one server (GET /servers/{id}); shared by the server layout and its tabs. */
export function useServerQuery(serverId: string) {
  return useQuery({
    queryKey: keys.servers.byId(serverId),
    queryFn: () => apiFetch<PublicServer>(`/servers/${encodeURIComponent(serverId)}`),
  });
}

/** How many tools wait for review (new + changed); two cheap count-only queries. */
export function usePendingCount(serverId: string): number | undefined {
  const one = (status: "new" | "changed") => ({
    queryKey: keys.tools.list(serverId, { status, pageSize: 1, countOnly: true }),
    queryFn: () => apiFetch<Page<PublicTool>>(`/servers/${encodeURIComponent(serverId)}/tools?status=${status}&pageSize=1`),
  });
  const added = useQuery(one("new"));
  const changed = useQuery(one("changed"));
  if (added.data === undefined || changed.data === undefined) return undefined;
  return added.data.total + changed.data.total;
}

const ServerContext = createContext<PublicServer | null>(null);
export const ServerProvider = ServerContext.Provider;

/** The server the current /servers/{id}/… page is about (loaded by the layout). */
export function useServer(): PublicServer {
  const s = useContext(ServerContext);
  if (!s) throw new Error("useServer outside the server layout");
  return s;
}
