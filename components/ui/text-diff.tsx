"use client";

import { useMemo } from "react";
import { layoutCedar, prettyJson, textDiff } from "./text-diff-lines";

export { layoutCedar, prettyJson };

const rowClass = { same: "text-slate-700", del: "bg-rose-50 text-rose-900", add: "bg-emerald-50 text-emerald-900" } as const;
const markClass = { same: "", del: "rounded-sm bg-rose-200 text-rose-950", add: "rounded-sm bg-emerald-200 text-emerald-950" } as const;
const sign = { same: " ", del: "-", add: "+" } as const;

/**
 * A unified, wrapped diff of two texts: removed lines red, added lines green,
 * the changed tokens inside them highlighted; long unchanged runs folded.
 * Lines wrap, so a change is never off-screen to the right.
 */
export function TextDiff({ before, after, label, testId }: { before: string; after: string; label?: string; testId?: string }) {
  const rows = useMemo(() => textDiff(before, after), [before, after]);
  return (
    <div role="group" aria-label={label ?? "Changes"} className="overflow-hidden font-mono text-xs" data-testid={testId ?? "text-diff"}>
      {rows.map((r, i) =>
        r.kind === "skip" ? (
          <div key={i} className="bg-slate-50 px-2 py-0.5 text-slate-500 italic">
            … {r.count} unchanged line{r.count === 1 ? "" : "s"}
          </div>
        ) : (
          <div key={i} className={`flex ${rowClass[r.kind]}`} data-diff-line={r.kind}>
            <span aria-hidden className="w-4 shrink-0 select-none pl-1 text-slate-400">
              {sign[r.kind]}
            </span>
            <span className="sr-only">{r.kind === "add" ? "added: " : r.kind === "del" ? "removed: " : ""}</span>
            <span className="min-w-0 flex-1 whitespace-pre-wrap break-words pr-2">
              {r.parts.map((p, k) =>
                p.changed && r.kind !== "same" && r.parts.length > 1 ? (
                  <mark key={k} className={markClass[r.kind]} data-testid={`diff-token-${r.kind === "add" ? "added" : "removed"}`}>
                    {p.text}
                  </mark>
                ) : (
                  <span key={k}>{p.text}</span>
                ),
              )}
              {r.parts.every((p) => !p.text) ? "\u00a0" : null}
            </span>
          </div>
        ),
      )}
    </div>
  );
}
