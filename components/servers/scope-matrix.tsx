"use client";

import { cx } from "@/components/ui";
import { ToolStatusBadge, RemovedUpstreamBadge } from "./badges";
import type { getScopeMapping } from "@/lib/scopes/service";

export type ScopeMappingData = Awaited<ReturnType<typeof getScopeMapping>>;
export type Mapping = Record<string, string[]>;

export const granted = (m: Mapping, scope: string, tool: string) => Boolean(m[scope]?.includes(tool));

/** The scope × tool matrix; each cell is a labelled checkbox. */
export function ScopeMatrix({
  scopes,
  tools,
  mapping,
  saved,
  readOnly,
  onToggle,
}: {
  scopes: string[];
  tools: ScopeMappingData["tools"];
  mapping: Mapping;
  /** The saved mapping, to mark cells changed locally. */
  saved: Mapping;
  readOnly: boolean;
  onToggle: (scope: string, tool: string, on: boolean) => void;
}) {
  return (
    <div className="overflow-x-auto rounded-lg bg-white shadow-sm ring-1 ring-slate-200">
      <table className="min-w-full divide-y divide-slate-200 text-sm">
        <caption className="sr-only">Which tools each scope grants</caption>
        <thead className="bg-slate-50">
          <tr>
            <th scope="col" className="sticky left-0 z-10 bg-slate-50 px-3 py-2 text-left text-xs font-semibold uppercase tracking-wide text-slate-500">
              Tool
            </th>
            {scopes.map((s) => (
              <th key={s} scope="col" className="px-3 py-2 text-center align-bottom">
                <span className="block font-mono text-xs font-semibold text-slate-700">{s}</span>
                <span className="block text-[11px] font-normal text-slate-500">
                  {mapping[s]?.length ?? 0} tool{(mapping[s]?.length ?? 0) === 1 ? "" : "s"}
                </span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {tools.map((t) => (
            <tr key={t.name} className="hover:bg-slate-50">
              <th scope="row" className="sticky left-0 z-10 bg-white px-3 py-1.5 text-left font-normal">
                <span className="flex flex-wrap items-center gap-1.5">
                  <span className="font-mono text-sm text-slate-900">{t.name}</span>
                  <ToolStatusBadge status={t.status} />
                  {t.removedUpstream ? <RemovedUpstreamBadge /> : null}
                </span>
              </th>
              {scopes.map((s) => {
                const on = granted(mapping, s, t.name);
                const changed = on !== granted(saved, s, t.name);
                return (
                  <td key={s} className={cx("px-3 py-1.5 text-center", changed && "bg-amber-50")}>
                    <input
                      type="checkbox"
                      checked={on}
                      disabled={readOnly}
                      aria-label={`Grant ${t.name} to scope ${s}`}
                      data-testid={`scope-cell-${s}-${t.name}`}
                      onChange={(e) => onToggle(s, t.name, e.target.checked)}
                      className="h-4 w-4 rounded border-slate-300 text-indigo-600 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600 disabled:opacity-60"
                    />
                    {changed ? <span className="sr-only"> (unsaved)</span> : null}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
