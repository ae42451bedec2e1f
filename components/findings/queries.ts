"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiFetch, qs } from "@/lib/client/api";
import type { Finding, FindingKind, PolicyRemedy, Score } from "@/lib/findings/compute";
import type { RemedyImpact } from "@/lib/findings/impact";

export type { Finding, FindingKind, PolicyRemedy, Score, RemedyImpact };

export interface FindingList {
  items: Finding[];
  counts: Record<FindingKind, number>;
  scores: Score[];
  truncated: boolean;
  tookMs: number;
  /** The oldest computation the list is made of (the hourly job's stored result, or now). */
  computedAt: string;
  source: "stored" | "live" | "mixed";
  scopes: { tenantId: string | null; source: "stored" | "live"; computedAt: string }[];
}
export interface ScoreHistory {
  tenantId: string;
  current: Score | null;
  history: { day: string; windowDays: number; granted: number; used: number; unused: number; score: number }[];
}
export interface RemedyPreview {
  finding: Finding;
  action: PolicyRemedy;
  description: string;
  impact: RemedyImpact;
}
export interface RemedyApplied extends RemedyPreview {
  publishIn: { id: string; name: string; href: string }[];
}

/** React Query keys of the least-privilege page: any remedy refreshes findings and scores (and grants, which a revoke changes). */
export const findingKeys = {
  all: ["findings"] as const,
  list: (p: { tenantId?: string; kind?: string }) => ["findings", "list", p] as const,
  scores: (tenantId: string) => ["findings", "scores", tenantId] as const,
};

export function useFindings(p: { tenantId?: string; kind?: string }) {
  return useQuery({ queryKey: findingKeys.list(p), queryFn: () => apiFetch<FindingList>(`/findings${qs(p)}`) });
}

export function useScores(tenantId: string | null) {
  return useQuery({ queryKey: findingKeys.scores(tenantId ?? ""), queryFn: () => apiFetch<ScoreHistory>(`/findings/scores${qs({ tenantId, days: 90 })}`), enabled: Boolean(tenantId) });
}

/** A write that changes findings; on success findings, scores and grants refresh. */
export function useFindingWrite<V, R>(call: (v: V) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: call,
    onSuccess: () => Promise.all([qc.invalidateQueries({ queryKey: findingKeys.all }), qc.invalidateQueries({ queryKey: ["grants"] })]),
  });
}

export const previewRemedy = (v: { finding: Finding; action: PolicyRemedy }) =>
  apiFetch<RemedyPreview>(`/findings/${encodeURIComponent(v.finding.id)}/preview`, { method: "POST", body: { action: v.action, tenantId: v.finding.tenantId ?? undefined } });
export const applyRemedy = (v: { finding: Finding; action: PolicyRemedy; acknowledgeFlips: boolean }) =>
  apiFetch<RemedyApplied>(`/findings/${encodeURIComponent(v.finding.id)}/remedy`, {
    method: "POST",
    body: { action: v.action, tenantId: v.finding.tenantId ?? undefined, acknowledgeFlips: v.acknowledgeFlips },
  });
/** A direct remedy through its existing admin API (revoke, retire); the path comes from the finding. */
export const directRemedy = (v: { method: "POST" | "DELETE"; path: string; body?: Record<string, unknown> }) =>
  apiFetch<unknown>(v.path.replace(/^\/api\/v1\/admin/, ""), { method: v.method, body: v.body });
/** Recomputes now (and stores) the findings the viewer reads: one tenant, or every tenant it reads. Limited per user. */
export const recomputeFindings = (v: { tenantId?: string }) => apiFetch<FindingList>("/findings/recompute", { method: "POST", body: { tenantId: v.tenantId } });
