"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { PublicApproval } from "@/lib/approvals/service";

export type ApprovalRow = PublicApproval;
export interface ApproverGroupRow {
  id: string;
  tenantId: string;
  name: string;
  createdAt: string;
  members: { userId: string; email: string; name: string }[];
}

/** React Query keys of approvals: any decision refreshes the queue, the request and the Overview count. */
export const approvalKeys = {
  all: ["approvals"] as const,
  list: (p: { tenantId?: string; view: "mine" | "all"; status?: string }) => ["approvals", "list", p] as const,
  one: (id: string) => ["approvals", "one", id] as const,
  groups: (tenantId: string) => ["approvals", "groups", tenantId] as const,
  settings: (tenantId: string) => ["approvals", "settings", tenantId] as const,
};

export function useApprovals(p: { tenantId?: string; view: "mine" | "all"; status?: string }) {
  return useQuery({
    queryKey: approvalKeys.list(p),
    queryFn: () => apiFetch<{ items: ApprovalRow[]; nextCursor: string | null }>(`/approvals${qs({ ...p, limit: 100 })}`),
    // New requests arrive while the approver looks at the queue.
    refetchInterval: 3000,
  });
}

export function useApproval(id: string) {
  return useQuery({ queryKey: approvalKeys.one(id), queryFn: () => apiFetch<ApprovalRow>(`/approvals/${encodeURIComponent(id)}`), refetchInterval: 3000 });
}

export function useDecideApproval() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: { id: string; decision: "approve" | "reject"; reason: string; similarMinutes?: number }) =>
      apiFetch<{ approval: ApprovalRow }>(`/approvals/${encodeURIComponent(v.id)}/decide`, {
        method: "POST",
        body: { decision: v.decision, reason: v.reason, ...(v.similarMinutes ? { similarMinutes: v.similarMinutes } : {}) },
      }),
    onSuccess: () => qc.invalidateQueries({ queryKey: approvalKeys.all }),
  });
}

export function useGroups(tenantId: string | null) {
  return useQuery({
    queryKey: approvalKeys.groups(tenantId ?? ""),
    queryFn: () => apiFetch<ApproverGroupRow[]>(`/approver-groups${qs({ tenantId: tenantId ?? undefined })}`),
    enabled: Boolean(tenantId),
  });
}

export function useGroupMutations(tenantId: string) {
  const qc = useQueryClient();
  const done = () => qc.invalidateQueries({ queryKey: approvalKeys.groups(tenantId) });
  return {
    create: useMutation({ mutationFn: (name: string) => apiFetch(`/approver-groups`, { method: "POST", body: { tenantId, name } }), onSuccess: done }),
    remove: useMutation({ mutationFn: (groupId: string) => apiFetch(`/approver-groups/${groupId}`, { method: "DELETE" }), onSuccess: done }),
    addMember: useMutation({ mutationFn: (v: { groupId: string; email: string }) => apiFetch(`/approver-groups/${v.groupId}/members`, { method: "POST", body: { email: v.email } }), onSuccess: done }),
    removeMember: useMutation({
      mutationFn: (v: { groupId: string; userId: string }) => apiFetch(`/approver-groups/${v.groupId}/members/${encodeURIComponent(v.userId)}`, { method: "DELETE" }),
      onSuccess: done,
    }),
  };
}

export function useApprovalSettings(tenantId: string | null) {
  const qc = useQueryClient();
  const q = useQuery({
    queryKey: approvalKeys.settings(tenantId ?? ""),
    queryFn: () => apiFetch<{ tenantId: string; requestTtlMinutes: number; webhook: string | null }>(`/tenants/${tenantId}/approval-settings`),
    enabled: Boolean(tenantId),
  });
  const save = useMutation({
    mutationFn: (body: { requestTtlMinutes?: number; webhookUrl?: string }) => apiFetch(`/tenants/${tenantId}/approval-settings`, { method: "PUT", body }),
    onSuccess: () => qc.invalidateQueries({ queryKey: approvalKeys.settings(tenantId ?? "") }),
  });
  return { q, save };
}
