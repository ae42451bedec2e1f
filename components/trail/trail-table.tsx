"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Button, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { prettyJson, TextDiff } from "@/components/ui/text-diff";
import { apiFetch, keys, qs } from "@/lib/client/api";

interface TrailEvent {
  id: string;
  at: string;
  actorType: string;
  actorLabel: string;
  action: string;
  targetType: string;
  targetId: string;
  tenantId: string | null;
  before: unknown;
  after: unknown;
}

/** The admin trail with keyset paging ("Load more"); each row expands to its before/after. */
export function TrailTable({
  tenantId,
  action,
  actor,
  targetType,
  targetId,
  from,
  to,
  limit = 50,
  compact,
}: {
  tenantId?: string | null;
  action?: string;
  actor?: string;
  targetType?: string;
  /** One object's changes only (e.g. a policy's history). */
  targetId?: string;
  /** ISO bounds of the time range. */
  from?: string;
  to?: string;
  limit?: number;
  compact?: boolean;
}) {
  const params = { tenantId: tenantId ?? undefined, action: action || undefined, actor: actor || undefined, targetType: targetType || undefined, targetId: targetId || undefined, from, to, limit };
  const q = useInfiniteQuery({
    queryKey: keys.trail.list(params),
    queryFn: ({ pageParam }) => apiFetch<{ items: TrailEvent[]; nextCursor: string | null }>(`/trail${qs({ ...params, cursor: pageParam })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const [open, setOpen] = useState<string | null>(null);
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  if (q.error) return <ErrorBanner error={q.error} />;
  if (q.isPending) return <p className="text-sm text-slate-500">Loading…</p>;
  if (rows.length === 0)
    return (
      <p className="text-sm text-slate-600">
        {params.action || params.actor || params.targetType || params.targetId || from || to
          ? "No admin change matches this filter."
          : "No admin change recorded yet. Every create, update, approval and revocation will be listed here."}
      </p>
    );
  return (
    <>
      <Table head={compact ? ["When", "Who", "What"] : ["When", "Who", "What", "Target", ""]}>
        {rows.map((e) => (
          <FragmentRow key={e.id} e={e} compact={compact} open={open === e.id} toggle={() => setOpen(open === e.id ? null : e.id)} />
        ))}
      </Table>
      {!compact && q.hasNextPage ? (
        <div className="mt-3">
          <Button variant="secondary" busy={q.isFetchingNextPage} onClick={() => q.fetchNextPage()}>
            Load more
          </Button>
        </div>
      ) : null}
    </>
  );
}

function FragmentRow({ e, compact, open, toggle }: { e: TrailEvent; compact?: boolean; open: boolean; toggle: () => void }) {
  return (
    <>
      <tr data-testid="trail-row">
        <Td className="whitespace-nowrap">
          <Time iso={e.at} />
        </Td>
        <Td>{e.actorLabel}</Td>
        <Td>
          <code className="text-xs">{e.action}</code>
        </Td>
        {compact ? null : (
          <>
            <Td>
              <span className="text-xs text-slate-500">{e.targetType}</span> <code className="text-xs">{e.targetId}</code>
            </Td>
            <Td>
              <Button variant="ghost" onClick={toggle} aria-expanded={open}>
                {open ? "Hide" : "Details"}
              </Button>
            </Td>
          </>
        )}
      </tr>
      {open ? (
        <tr>
          <td colSpan={5} className="bg-slate-50 px-3 py-2">
            <div className="text-xs">
              <div className="mb-1 font-semibold text-slate-600">{e.before == null ? "Created with" : e.after == null ? "Removed; it was" : "Changes (before → after)"}</div>
              <div className="rounded bg-white py-1 ring-1 ring-slate-200">
                {e.before == null && e.after == null ? <p className="px-2 text-slate-500">No value recorded.</p> : null}
                <TextDiff before={prettyJson(e.before ?? undefined)} after={prettyJson(e.after ?? undefined)} label={`Before and after of ${e.action}`} testId="trail-diff" />
              </div>
            </div>
          </td>
        </tr>
      ) : null}
    </>
  );
}
