"use client";

import { useState } from "react";
import { cx, EmptyState, ErrorBanner } from "@/components/ui";
import { ApprovalDetail } from "./approval-detail";
import { useApprovals } from "./queries";

const views = { mine: "Waiting for me", all: "All requests" } as const;

/** The approval queue of a tenant (or every tenant the viewer reads): by default only what the viewer may decide. */
export function ApprovalsQueue({ tenantId }: { tenantId: string | null }) {
  const [view, setView] = useState<"mine" | "all">("mine");
  const q = useApprovals({ tenantId: tenantId ?? undefined, view });
  return (
    <section aria-label="Approval queue">
      <div role="tablist" aria-label="Approval views" className="mb-4 flex gap-6 border-b border-slate-200">
        {(Object.keys(views) as (keyof typeof views)[]).map((v) => (
          <button
            key={v}
            role="tab"
            type="button"
            aria-selected={view === v}
            onClick={() => setView(v)}
            className={cx("-mb-px border-b-2 px-1 pb-2.5 text-sm font-medium", view === v ? "border-indigo-600 text-indigo-700" : "border-transparent text-slate-600 hover:text-slate-800")}
          >
            {views[v]}
          </button>
        ))}
      </div>
      <ErrorBanner error={q.error} />
      {q.data && q.data.items.length === 0 ? (
        <EmptyState title={view === "mine" ? "Nothing waits for your approval" : "No approval requests"}>
          A policy forbid annotated <code>@approval(&quot;group&quot;)</code> holds matching calls for a person. They appear here for the members of that group; the caller&apos;s client shows them a
          link to the request.
        </EmptyState>
      ) : null}
      <ul className="space-y-4">
        {(q.data?.items ?? []).map((a) => (
          <li key={a.id} className="rounded-lg border border-slate-200 bg-white p-4">
            <ApprovalDetail a={a} compact />
          </li>
        ))}
      </ul>
    </section>
  );
}
