"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useState, type ReactNode } from "react";
import { Button, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { prettyJson, TextDiff } from "@/components/ui/text-diff";
import { apiFetch, keys, qs } from "@/lib/client/api";

export interface TrailEvent {
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

/** targetType → targetId → name and link (GET /trail `names`; only objects of the viewer's tenants). */
type TargetNames = Record<string, Record<string, { name: string; href: string | null }>>;

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
  rowAction,
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
  /** Something to do with one event (e.g. "Restore this version" on a policy's History), beside Details. */
  rowAction?: (e: TrailEvent) => ReactNode;
}) {
  const params = { tenantId: tenantId ?? undefined, action: action || undefined, actor: actor || undefined, targetType: targetType || undefined, targetId: targetId || undefined, from, to, limit };
  const q = useInfiniteQuery({
    queryKey: keys.trail.list(params),
    queryFn: ({ pageParam }) => apiFetch<{ items: TrailEvent[]; nextCursor: string | null; names?: TargetNames }>(`/trail${qs({ ...params, cursor: pageParam })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const [open, setOpen] = useState<string | null>(null);
  const rows = q.data?.pages.flatMap((p) => p.items) ?? [];
  // Each page names its own targets.
  const names: TargetNames = {};
  for (const p of q.data?.pages ?? []) for (const [type, byId] of Object.entries(p.names ?? {})) Object.assign((names[type] ??= {}), byId);
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
          <FragmentRow key={e.id} e={e} target={names[e.targetType]?.[e.targetId]} compact={compact} open={open === e.id} toggle={() => setOpen(open === e.id ? null : e.id)} action={rowAction?.(e)} />
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

/** The target: its name linking to it when the viewer may read it, else its type and id. */
function Target({ e, target }: { e: TrailEvent; target?: { name: string; href: string | null } }) {
  const type = <span className="text-xs text-slate-500">{e.targetType.replace(/_/g, " ")}</span>;
  if (!target) {
    return (
      <>
        {type} <code className="text-xs">{e.targetId}</code>
      </>
    );
  }
  return (
    <span data-testid="trail-target" title={`${e.targetType} ${e.targetId}`}>
      {type}{" "}
      {target.href ? (
        <Link href={target.href} className="font-medium text-indigo-700 hover:underline">
          {target.name}
        </Link>
      ) : (
        <span className="font-medium text-slate-800">{target.name}</span>
      )}
    </span>
  );
}

function FragmentRow({
  e,
  target,
  compact,
  open,
  toggle,
  action,
}: {
  e: TrailEvent;
  target?: { name: string; href: string | null };
  compact?: boolean;
  open: boolean;
  toggle: () => void;
  action?: ReactNode;
}) {
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
              <Target e={e} target={target} />
            </Td>
            <Td>
              <div className="flex flex-wrap items-center justify-end gap-1">
                <Button variant="ghost" onClick={toggle} aria-expanded={open}>
                  {open ? "Hide" : "Details"}
                </Button>
                {action}
              </div>
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
