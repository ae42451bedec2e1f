"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback } from "react";
import { useTenant } from "@/components/shell/context";

export const GRANT_TABS = ["grants", "clients", "revocations"] as const;
export type GrantTab = (typeof GRANT_TABS)[number];

/** The grants page's state as it lives in the address bar: tab, filters and a tenant chosen on this page only. */
export interface GrantsParams {
  tab: GrantTab;
  user: string;
  client: string;
  server: string;
  /** A tenant chosen on this page; it never changes the global tenant switcher. */
  tenant: string;
}

export function useGrantsParams(): [GrantsParams & { tenantId: string | null }, (patch: Partial<GrantsParams>) => void] {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const global = useTenant().tenantId;
  const tab = params.get("tab");
  const state: GrantsParams = {
    tab: GRANT_TABS.includes(tab as GrantTab) ? (tab as GrantTab) : "grants",
    user: params.get("user") ?? "",
    client: params.get("client") ?? "",
    server: params.get("server") ?? "",
    tenant: params.get("tenant") ?? "",
  };
  const set = useCallback(
    (patch: Partial<GrantsParams>) => {
      const next = new URLSearchParams(params.toString());
      for (const [k, v] of Object.entries(patch)) {
        if (v && !(k === "tab" && v === "grants")) next.set(k, v);
        else next.delete(k);
      }
      const q = next.toString();
      // A tab or filter change is a step Back can undo (a typed filter counts once it settles, after the box's 250 ms pause).
      router.push(`${pathname}${q ? `?${q}` : ""}`, { scroll: false });
    },
    [params, pathname, router],
  );
  // The page's tenant (from the URL) wins over the global switcher, which it never changes.
  return [{ ...state, tenantId: state.tenant || global }, set];
}

/** The address of the page listing everything one user delegated. */
export const userGrantsHref = (userId: string) => `/grants/user?id=${encodeURIComponent(userId)}`;
