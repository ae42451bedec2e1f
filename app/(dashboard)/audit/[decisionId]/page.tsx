"use client";

import { use } from "react";
import { DecisionDetailView } from "@/components/audit/decision-detail";

export default function DecisionPage({ params }: { params: Promise<{ decisionId: string }> }) {
  const { decisionId } = use(params);
  return <DecisionDetailView decisionId={decisionId} />;
}
