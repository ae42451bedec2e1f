"use client";

import { createContext, useCallback, useContext, useEffect, useState } from "react";

export interface ShellMe {
  email: string;
  globalRole: "owner" | "auditor" | "member";
  mustChangePassword: boolean;
  tenants: { id: string; name: string; status: "active" | "disabled"; role: "owner" | "admin" | "auditor" }[];
}

export const MeContext = createContext<ShellMe | null>(null);

export function useMe(): ShellMe {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside the dashboard shell");
  return me;
}

/** Whether the viewer may change things in this tenant (owners and tenant admins). */
export function useCanWrite(tenantId: string | null | undefined): boolean {
  const me = useMe();
  if (me.globalRole === "owner") return true;
  return Boolean(tenantId && me.tenants.find((t) => t.id === tenantId)?.role === "admin");
}

interface TenantSelection {
  tenantId: string | null;
  setTenantId: (id: string | null) => void;
}

export const TenantContext = createContext<TenantSelection>({ tenantId: null, setTenantId: () => {} });
export const useTenant = () => useContext(TenantContext);

const STORAGE_KEY = "mandate.tenant";

/** The tenant the viewer is working in, remembered in this browser. */
export function useTenantSelection(tenants: { id: string }[]): TenantSelection {
  const [tenantId, setState] = useState<string | null>(null);
  useEffect(() => {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    // eslint-disable-next-line react-hooks/set-state-in-effect -- restoring a browser-only preference after hydration
    if (saved && tenants.some((t) => t.id === saved)) setState(saved);
  }, [tenants]);
  const setTenantId = useCallback((id: string | null) => {
    setState(id);
    if (id) window.localStorage.setItem(STORAGE_KEY, id);
    else window.localStorage.removeItem(STORAGE_KEY);
  }, []);
  return { tenantId, setTenantId };
}
