"use client";

import Link from "next/link";
import { use } from "react";
import { ApprovalDetail } from "@/components/approvals/approval-detail";
import { useApproval } from "@/components/approvals/queries";
import { ErrorBanner, PageHeader } from "@/components/ui";

/** The page an agent's URL elicitation names: one request, decided here. */
export default function ApprovalPage({ params }: { params: Promise<{ approvalId: string }> }) {
  const { approvalId } = use(params);
  const q = useApproval(approvalId);
  return (
    <>
      <PageHeader
        title="Approval request"
        description={
          <Link href="/approvals" className="text-indigo-700 hover:underline">
            All approval requests
          </Link>
        }
      />
      <ErrorBanner error={q.error} />
      {q.data ? (
        <div className="max-w-3xl rounded-lg border border-slate-200 bg-white p-4">
          <ApprovalDetail a={q.data} />
        </div>
      ) : null}
    </>
  );
}
