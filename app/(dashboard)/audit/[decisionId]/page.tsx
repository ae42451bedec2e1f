"use client";

import { Suspense, use } from "react";
import { DecisionDetailView } from "@/components/audit/decision-detail";

export default function DecisionPage({ params }: { params: Promise<{ decisionId: string }> }) {
  const { decisionId } = use(params);
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading the decision…</p>}>
      <DecisionDetailView decisionId={decisionId} />
    </Suspense>
  );
}
