"use client";

import { useInfiniteQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useRef, useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";
import { apiParams, auditKeys, cursorOf, filterQuery, hrefOf, type AuditFilter, type DecisionRow, type Names } from "./filters";

export function OutcomeBadge({ outcome }: { outcome: DecisionRow["outcome"] }) {
  return outcome === "allow" ? <Badge color="green">allow</Badge> : outcome === "deny" ? <Badge color="red">deny</Badge> : <Badge color="amber">error</Badge>;
}

const TAIL_MS = 2000;
const TAIL_MAX = 500;

/**
 * The decisions of a filter, newest first, with "Load more" (keyset cursor)
 * and an optional live tail: every 2 s it asks for rows newer than the newest
 * shown and puts them on top; it pauses while the tab is hidden or the
 * reader has scrolled down.
 */
/** A name linking to its object, or the bare id when the viewer may not read it (or it is gone). */
export function NameLink({ kind, id, names }: { kind: "tenant" | "server" | "fleet" | "policy"; id: string; names: Partial<Names> | undefined }) {
  const name = names?.[kind]?.[id];
  if (!name) return <code className="text-xs">{id}</code>;
  return (
    <Link href={hrefOf(kind, id)} className="text-indigo-700 hover:underline" title={id}>
      {name}
    </Link>
  );
}

type Page = { items: DecisionRow[]; nextCursor: string | null; names?: Names };

export function DecisionTable({ filter, serverNames, onFilter }: { filter: AuditFilter; serverNames: Map<string, string>; onFilter: (patch: Partial<AuditFilter>) => void }) {
  const me = useMe();
  const q = useInfiniteQuery({
    queryKey: auditKeys.list(filter),
    queryFn: ({ pageParam }) => apiFetch<Page>(`/decisions${qs({ ...apiParams(filter), limit: 50, cursor: pageParam })}`),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const [live, setLive] = useState(false);
  const [tail, setTail] = useState<{ key: string; rows: DecisionRow[]; names: Names[] }>({ key: "", rows: [], names: [] });
  const [paused, setPaused] = useState(false);
  const [tailError, setTailError] = useState<unknown>(null);
  const filterKey = JSON.stringify(filter);
  const tailRows = tail.key === filterKey ? tail.rows : [];
  const rows = [...tailRows, ...(q.data?.pages.flatMap((p) => p.items) ?? [])];
  // Names from every page (and the tail), falling back to what the shell and the filter bar know.
  const names: Names = { tenant: Object.fromEntries(me.tenants.map((t) => [t.id, t.name])), server: Object.fromEntries(serverNames), fleet: {}, agent: {}, policy: {} };
  for (const n of [...(tail.key === filterKey ? tail.names : []), ...(q.data?.pages.map((p) => p.names) ?? [])])
    if (n) for (const k of Object.keys(names) as (keyof Names)[]) Object.assign(names[k], n[k]);
  const back = filterQuery(filter);
  const newest = useRef<DecisionRow | undefined>(undefined);
  const newestRow = rows[0];
  useEffect(() => {
    newest.current = newestRow;
  }, [newestRow]);

  useEffect(() => {
    if (!live) return;
    let stop = false;
    const tick = async () => {
      const away = document.hidden || window.scrollY > 300;
      setPaused(away);
      if (away || stop || !q.isSuccess) return;
      const after = newest.current;
      try {
        // Without a shown row, the tail starts from now.
        const cursor = cursorOf(after ?? { at: new Date().toISOString(), id: "0" });
        const res = await apiFetch<Page>(`/decisions${qs({ ...apiParams(filter), limit: 200, after: cursor })}`);
        if (stop || res.items.length === 0) return;
        setTail((t) => ({
          key: filterKey,
          rows: [...res.items, ...(t.key === filterKey ? t.rows : [])].slice(0, TAIL_MAX),
          names: [...(t.key === filterKey ? t.names : []), ...(res.names ? [res.names] : [])].slice(-50),
        }));
        setTailError(null);
      } catch (e) {
        setTailError(e);
      }
    };
    const id = setInterval(tick, TAIL_MS);
    return () => {
      stop = true;
      clearInterval(id);
    };
  }, [live, filter, filterKey, q.isSuccess]);

  const toolbar = (
    <div className="mb-2 flex items-center gap-3 text-sm">
      <label className="inline-flex items-center gap-2 text-slate-700">
        <input type="checkbox" checked={live} onChange={(e) => setLive(e.target.checked)} aria-label="Live tail" />
        Live tail
      </label>
      {live ? (
        paused ? (
          <span className="text-xs text-amber-700">Paused (scroll to the top to resume)</span>
        ) : (
          <span className="inline-flex items-center gap-1 text-xs text-emerald-700">
            <span className="h-2 w-2 animate-pulse rounded-full bg-emerald-500" aria-hidden /> Watching for new decisions every 2 s
          </span>
        )
      ) : null}
      {tailError ? <ErrorBanner error={tailError} /> : null}
    </div>
  );

  if (q.error) return <ErrorBanner error={q.error} />;
  if (q.isPending) return <p className="text-sm text-slate-500">Loading decisions…</p>;
  if (rows.length === 0)
    return (
      <>
        {toolbar}
        <EmptyState title="No decision matches">Agents report every decision they make; none matches this filter and time range. Widen the time range or clear a filter.</EmptyState>
      </>
    );
  return (
    <>
      {toolbar}
      <Table head={["Time", "Outcome", "Tenant", "Server", "Tool", "User", "Client", "Policy", "Reason"]}>
        {rows.map((d) => (
          <tr key={d.id} data-testid="decision-row" className="hover:bg-slate-50">
            <Td className="whitespace-nowrap">
              <Link href={`/audit/${d.id}${back ? `?back=${encodeURIComponent(back)}` : ""}`} className="text-indigo-700 hover:underline" aria-label={`Open decision ${d.id}`}>
                <Time iso={d.at} />
              </Link>
            </Td>
            <Td>
              <OutcomeBadge outcome={d.outcome} />
            </Td>
            <Td className="text-xs">{d.tenantId ? <NameLink kind="tenant" id={d.tenantId} names={names} /> : <span className="text-slate-400">none</span>}</Td>
            <Td className="text-xs">
              <NameLink kind="server" id={d.serverId} names={names} />
            </Td>
            <Td>
              {d.tool ? (
                <button type="button" className="font-mono text-xs hover:underline" title="Filter by this tool" onClick={() => onFilter({ tool: d.tool! })}>
                  {d.tool}
                </button>
              ) : (
                <span className="text-xs text-slate-500">{d.method}</span>
              )}
            </Td>
            <Td>
              {d.user ? (
                <button type="button" className="text-xs hover:underline" title="Filter by this user" onClick={() => onFilter({ user: d.user! })}>
                  {d.user}
                </button>
              ) : null}
            </Td>
            <Td>
              {d.client ? (
                <button type="button" className="text-xs hover:underline" title="Filter by this client" onClick={() => onFilter({ client: d.client! })}>
                  {d.client}
                </button>
              ) : null}
            </Td>
            <Td className="text-xs">
              <span data-testid="decision-policies">
                {(d.determining ?? []).length === 0 ? (
                  <span className="text-slate-400">—</span>
                ) : (
                  (d.determining ?? []).map((pid) => (
                    <button key={pid} type="button" className="mr-1 hover:underline" title={`Filter by this policy (${pid})`} onClick={() => onFilter({ policy: pid })}>
                      {names.policy[pid] ?? <code>{pid}</code>}
                    </button>
                  ))
                )}
              </span>
            </Td>
            <Td className="max-w-xs truncate text-xs">
              <span title={d.reason}>{d.reason}</span>
            </Td>
          </tr>
        ))}
      </Table>
      {q.hasNextPage ? (
        <div className="mt-3">
          <Button variant="secondary" busy={q.isFetchingNextPage} onClick={() => q.fetchNextPage()}>
            Load more
          </Button>
        </div>
      ) : (
        <p className="mt-3 text-xs text-slate-500">End of the results for this time range.</p>
      )}
    </>
  );
}
