"use client";

import Link from "next/link";
import { Badge, Card } from "@/components/ui";
import { useApprovals } from "./queries";

/** The Overview's notification: how many calls wait for this viewer's approval, and the oldest few. */
export function PendingApprovalsCard({ tenantId }: { tenantId: string | null }) {
  const q = useApprovals({ tenantId: tenantId ?? undefined, view: "mine" });
  const items = q.data?.items ?? [];
  if (!q.data || items.length === 0) return null;
  return (
    <Card
      title={
        <span data-testid="pending-approvals">
          Calls waiting for your approval <Badge color="amber">{items.length}</Badge>
        </span>
      }
      actions={
        <Link href="/approvals" className="text-sm text-indigo-700 hover:underline">
          Approval queue
        </Link>
      }
      className="mb-6"
    >
      <ul className="divide-y divide-slate-100 text-sm">
        {items.slice(0, 5).map((a) => (
          <li key={a.id} className="flex items-center justify-between py-2">
            <Link href={`/approvals/${a.id}`} className="font-medium text-indigo-700 hover:underline">
              {a.tool} on {a.serverName ?? a.serverId}
            </Link>
            <span className="text-slate-500">{a.userId.slice(a.userId.indexOf("#") + 1)}</span>
          </li>
        ))}
      </ul>
    </Card>
  );
}
