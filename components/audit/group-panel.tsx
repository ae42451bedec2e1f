"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Card, ErrorBanner } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";
import { apiParams, auditKeys, type AuditFilter } from "./filters";

const BY = { tool: "Tool", user: "User", client: "Client", policy: "Policy", outcome: "Outcome" } as const;
type By = keyof typeof BY;

interface Groups {
  by: By;
  groups: { key: string | null; name?: string; count: number; denied: number }[];
  others: number;
  total: number;
  source: "rollups" | "raw";
  /** The window counted: the filter's, widened to whole UTC minutes, hours or days (as the charts). */
  from: string;
  to: string;
  bucket: "minute" | "hour" | "day";
}

const UNIT = { minute: "minutes", hour: "hours", day: "days" } as const;
/** "2026-12-06 00:00" (UTC). */
const utc = (iso: string) => new Date(iso).toISOString().slice(0, 16).replace("T", " ");

/** The exact window the counts cover, in UTC: the filter's widened to whole buckets (GET /decisions/groups answers it). */
function GroupWindow({ g }: { g: Groups }) {
  return (
    <span className="block" data-testid="group-window">
      Counted over <time dateTime={g.from}>{utc(g.from)}</time> – <time dateTime={g.to}>{utc(g.to)}</time> UTC: the filter&apos;s window widened to whole UTC {UNIT[g.bucket]}, as in the charts.
    </span>
  );
}

const NONE: Record<By, string> = { tool: "(no tool: tools/list)", user: "(no user)", client: "(no client)", policy: "(no policy: default deny or built-in)", outcome: "" };

/**
 * Counts of the filter's decisions per tool, user, client, policy or outcome
 * (GET /decisions/groups). A group narrows the log to it.
 */
export function GroupPanel({ filter, onFilter }: { filter: AuditFilter; onFilter: (patch: Partial<AuditFilter>) => void }) {
  const [by, setBy] = useState<By | "">("");
  const q = useQuery({
    queryKey: [...auditKeys.all, "groups", by, filter],
    queryFn: () => apiFetch<Groups>(`/decisions/groups${qs({ ...apiParams(filter), by, limit: 20 })}`),
    enabled: by !== "",
  });
  const pick = (key: string) => {
    if (by === "outcome") onFilter({ outcome: key as AuditFilter["outcome"] });
    else if (by) onFilter({ [by]: key } as Partial<AuditFilter>);
  };
  const max = Math.max(1, ...(q.data?.groups.map((g) => g.count) ?? []));
  return (
    <Card
      title="Group by"
      className="mb-4"
      actions={
        <label className="flex items-center gap-2 text-sm text-slate-700">
          <span className="sr-only">Group decisions by</span>
          <select value={by} onChange={(e) => setBy(e.target.value as By | "")} className="rounded-md border border-slate-300 px-2 py-1 text-sm" aria-label="Group decisions by">
            <option value="">No grouping</option>
            {(Object.keys(BY) as By[]).map((k) => (
              <option key={k} value={k}>
                {BY[k]}
              </option>
            ))}
          </select>
        </label>
      }
    >
      {by === "" ? (
        <p className="text-sm text-slate-500">Pick a field to count the decisions of this filter per tool, user, client, policy or outcome; click a group to show its decisions.</p>
      ) : q.error ? (
        <ErrorBanner error={q.error} />
      ) : !q.data ? (
        <p className="text-sm text-slate-500">Counting…</p>
      ) : q.data.groups.length === 0 ? (
        <p className="text-sm text-slate-500">
          No decision matches this filter.
          <GroupWindow g={q.data} />
        </p>
      ) : (
        <table className="w-full text-sm" data-testid="group-table">
          <thead>
            <tr className="text-left text-xs text-slate-500">
              <th className="py-1 font-medium">{BY[by]}</th>
              <th className="py-1 text-right font-medium">Decisions</th>
              <th className="py-1 text-right font-medium">Denied</th>
              <th className="w-1/3 py-1" aria-hidden />
            </tr>
          </thead>
          <tbody>
            {q.data.groups.map((g) => (
              <tr key={g.key ?? "\u0000"} data-testid="group-row">
                <td className="max-w-xs truncate py-1">
                  {g.key === null ? (
                    <span className="text-slate-500">{NONE[by]}</span>
                  ) : (
                    <button type="button" className="text-left font-mono text-xs text-indigo-700 hover:underline" title={`Show the decisions of ${g.name ?? g.key}`} onClick={() => pick(g.key!)}>
                      {g.name ?? g.key}
                    </button>
                  )}
                </td>
                <td className="py-1 text-right tabular-nums">{g.count.toLocaleString()}</td>
                <td className="py-1 text-right tabular-nums text-rose-700">{g.denied ? g.denied.toLocaleString() : ""}</td>
                <td className="py-1 pl-2">
                  <div className="h-2 rounded bg-indigo-400" style={{ width: `${(g.count / max) * 100}%` }} />
                </td>
              </tr>
            ))}
          </tbody>
          <tfoot>
            <tr className="text-xs text-slate-500">
              <td className="pt-2" colSpan={4}>
                {q.data.total.toLocaleString()} decisions{by === "policy" ? " counted once per determining policy" : ""}
                {q.data.others ? `; ${q.data.others.toLocaleString()} in smaller groups not shown` : ""}.
                <GroupWindow g={q.data} />
              </td>
            </tr>
          </tfoot>
        </table>
      )}
    </Card>
  );
}
