"use client";

import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useMemo } from "react";

/** Time range presets (ms back from now); "custom" uses from/to. */
export const RANGES = { "15m": 15 * 60_000, "1h": 3600_000, "24h": 86_400_000, "7d": 7 * 86_400_000, "30d": 30 * 86_400_000 } as const;
export type RangeKey = keyof typeof RANGES | "custom";
export const RANGE_LABELS: Record<RangeKey, string> = { "15m": "Last 15 minutes", "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", custom: "Custom range" };

/** The audit filter as it lives in the address bar. */
export interface AuditFilter {
  range: RangeKey;
  /** datetime-local values (viewer's zone) for a custom range. */
  from: string;
  to: string;
  tenant: string;
  server: string;
  tool: string;
  user: string;
  client: string;
  outcome: "" | "allow" | "deny" | "error";
  revision: string;
  /** A policy id: decisions it determined. */
  policy: string;
  q: string;
}

const FIELDS = ["range", "from", "to", "tenant", "server", "tool", "user", "client", "outcome", "revision", "policy", "q"] as const;

export function filterFromParams(p: URLSearchParams): AuditFilter {
  const range = (p.get("range") ?? "24h") as RangeKey;
  const outcome = p.get("outcome") ?? "";
  return {
    range: range in RANGES || range === "custom" ? range : "24h",
    from: p.get("from") ?? "",
    to: p.get("to") ?? "",
    tenant: p.get("tenant") ?? "",
    server: p.get("server") ?? "",
    tool: p.get("tool") ?? "",
    user: p.get("user") ?? "",
    client: p.get("client") ?? "",
    outcome: outcome === "allow" || outcome === "deny" || outcome === "error" ? outcome : "",
    revision: /^\d+$/.test(p.get("revision") ?? "") ? p.get("revision")! : "",
    policy: p.get("policy") ?? "",
    q: p.get("q") ?? "",
  };
}

/** A datetime-local value as an ISO instant, or undefined. */
const localToIso = (v: string) => {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
};

/**
 * The API query of a filter. Presets are resolved when called (the window
 * slides with time); keyset cursors keep older pages stable anyway.
 */
export function apiParams(f: AuditFilter, now = Date.now()): Record<string, string | undefined> {
  const window = f.range === "custom" ? { from: localToIso(f.from), to: localToIso(f.to) } : { from: new Date(now - RANGES[f.range]).toISOString(), to: undefined };
  return {
    ...window,
    tenantId: f.tenant || undefined,
    serverId: f.server || undefined,
    tool: f.tool || undefined,
    user: f.user || undefined,
    client: f.client || undefined,
    outcome: f.outcome || undefined,
    bundleRevision: f.revision || undefined,
    policyId: f.policy || undefined,
    q: f.q || undefined,
  };
}

/** The filter in the URL, and a setter that replaces it (shareable, back-button friendly). */
export function useAuditFilter(): [AuditFilter, (patch: Partial<AuditFilter>) => void] {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const filter = useMemo(() => filterFromParams(new URLSearchParams(params.toString())), [params]);
  const set = useCallback(
    (patch: Partial<AuditFilter>) => {
      const qs = filterQuery({ ...filter, ...patch });
      router.replace(qs ? `${pathname}?${qs}` : pathname, { scroll: false });
    },
    [filter, pathname, router],
  );
  return [filter, set];
}

/** The address-bar query of a filter (defaults left out): saved views and the detail's way back keep it. */
export function filterQuery(f: AuditFilter): string {
  const s = new URLSearchParams();
  for (const k of FIELDS) {
    const v = f[k];
    if (v && !(k === "range" && v === "24h")) s.set(k, v);
  }
  return s.toString();
}

/** A datetime-local value (viewer's zone) for an instant: a chart bar's bucket becomes a custom range. */
export function isoToLocal(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** base64url("<at>|<id>"), as the API's cursors. */
export const cursorOf = (row: { at: string; id: string }) => btoa(`${row.at}|${row.id}`).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** Query-key factory for the decision log. */
export const auditKeys = {
  all: ["decisions"] as const,
  list: (p: object) => ["decisions", "list", p] as const,
  charts: (p: object) => ["decisions", "charts", p] as const,
  byId: (id: string) => ["decisions", "one", id] as const,
};

export interface DecisionRow {
  id: string;
  at: string;
  tenantId: string | null;
  serverId: string;
  fleetId: string;
  bundleRevision: number | null;
  method: string;
  tool: string | null;
  user: string | null;
  client: string | null;
  outcome: "allow" | "deny" | "error";
  reason: string;
  /** Ids of the determining policies. */
  determining: string[];
}

/** Names of the ids a page or a decision refers to, resolved by the server for the viewer (an id missing is shown as is). */
export type NameKind = "tenant" | "server" | "fleet" | "agent" | "policy";
export type Names = Record<NameKind, Record<string, string>>;

/** Dashboard address of an object (agents are listed on their fleet's page). */
export const hrefOf = (kind: Exclude<NameKind, "agent">, id: string) => `/${kind === "policy" ? "policies" : `${kind}s`}/${encodeURIComponent(id)}`;
