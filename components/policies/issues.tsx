"use client";

import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { CheckResult, PolicyRule } from "./types";

/** One problem to show: where (a line or a form field) and what. */
export interface ShownIssue {
  message: string;
  help?: string;
  line?: number;
  column?: number;
  /** A form field, for problems found before any Cedar exists (e.g. "Tools"). */
  field?: string;
  /** The API path of a field problem ("rule.tools"), to show it at its field too. */
  path?: string;
  /** The named policy the problem is in (draft compile issues). */
  policy?: string;
}

/** A value that settles `ms` after its last change. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

const ruleFieldLabels: [RegExp, string][] = [
  [/^rule\.effect/, "Effect"],
  [/^rule\.actions/, "Actions"],
  [/^rule\.tools/, "Tools"],
  [/^rule\.toolFilter/, "Tool filter"],
  [/^rule\.principals\.users/, "Users"],
  [/^rule\.principals\.groups/, "Groups"],
  [/^rule\.clients/, "Clients"],
  [/^rule\.time/, "Time window"],
];

/** A readable name for an API issue path ("rule.conditions.0.value" → "Condition 1, value"). */
export function fieldLabel(path: string): string {
  const c = /^rule\.conditions\.(\d+)(?:\.(\w+))?/.exec(path);
  if (c) return `Condition ${Number(c[1]) + 1}${c[2] ? `, ${c[2] === "arg" ? "argument" : c[2] === "op" ? "operator" : c[2]}` : ""}`;
  for (const [re, label] of ruleFieldLabels) if (re.test(path)) return label;
  if (path === "cedar" || path === "") return "";
  const rest = path.replace(/^rule\./, "");
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

/** Splits "line 3, column 5: message (help)" as the save endpoint words it. */
export function parseSaveIssue(i: { path: string; message: string }): ShownIssue {
  const m = /^line (\d+), column (\d+): ([\s\S]*)$/.exec(i.message);
  const field = fieldLabel(i.path) || undefined;
  return m ? { line: Number(m[1]), column: Number(m[2]), message: m[3]!, field, path: i.path } : { message: i.message, field, path: i.path };
}

/**
 * Live validation for the editor: POST /policies/check, debounced. A rule the
 * API refuses to compile (422) comes back as field issues; other failures as `error`.
 */
export function usePolicyCheck(tenantId: string, serverId: string, input: { cedar: string } | { rule: PolicyRule }, ms = 400) {
  // Debounced on the JSON text: a new but equal object must not restart the timer.
  const json = JSON.stringify(input);
  const settledJson = useDebounced(json, ms);
  const body = { tenantId, serverId, ...(JSON.parse(settledJson) as { cedar: string } | { rule: PolicyRule }) };
  const q = useQuery({
    queryKey: keys.policies.check(body),
    queryFn: async (): Promise<{ result: CheckResult | null; issues: ShownIssue[] }> => {
      try {
        const result = await apiFetch<CheckResult>("/policies/check", { method: "POST", body });
        return { result, issues: result.issues.map((i) => ({ message: i.message, help: i.help, line: i.line, column: i.column })) };
      } catch (e) {
        if (e instanceof ApiError && e.status === 422 && e.issues.length)
          return { result: null, issues: e.issues.map((i) => ({ message: i.message, field: fieldLabel(i.path) || undefined, path: i.path })) };
        throw e;
      }
    },
    placeholderData: keepPreviousData,
    retry: false,
    staleTime: 30_000,
  });
  const pending = settledJson !== json || q.isFetching;
  return { data: q.data, error: q.error, pending };
}

/** The issues list (`policy-issues`), or a short status when there is none. */
export function IssuesList({ issues, pending, okText, onJump, id }: { issues: ShownIssue[]; pending?: boolean; okText: string; onJump?: (line: number, column: number) => void; id?: string }) {
  return (
    <div id={id} aria-live="polite" className="space-y-1">
      {issues.length ? (
        <>
          <p className="text-sm font-medium text-rose-700">
            {issues.length} problem{issues.length === 1 ? "" : "s"}
            {pending ? <span className="ml-2 font-normal text-slate-500">checking…</span> : null}
          </p>
          <ul data-testid="policy-issues" className="divide-y divide-rose-100 rounded-md bg-rose-50 text-sm text-rose-900 ring-1 ring-inset ring-rose-200">
            {issues.map((i, n) => (
              <li key={n} className="px-3 py-1.5">
                {i.line ? (
                  onJump ? (
                    <button
                      type="button"
                      onClick={() => onJump(i.line!, i.column ?? 1)}
                      className="mr-2 rounded font-mono text-xs font-semibold text-rose-700 underline decoration-dotted hover:decoration-solid focus-visible:outline-2 focus-visible:outline-indigo-600"
                      title="Go to this position in the editor"
                    >
                      {`line ${i.line}, column ${i.column ?? 1}`}
                    </button>
                  ) : (
                    <span className="mr-2 font-mono text-xs font-semibold text-rose-700">{`line ${i.line}, column ${i.column ?? 1}`}</span>
                  )
                ) : null}
                {i.policy ? <span className="mr-1 font-medium">Policy “{i.policy}”:</span> : null}
                {i.field ? <span className="mr-1 font-medium">{i.field}:</span> : null}
                <span>{i.message}</span>
                {i.help ? <span className="block text-xs text-rose-700">{i.help}</span> : null}
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p role="status" className={pending ? "text-sm text-slate-500" : "text-sm text-emerald-700"}>
          {pending ? "Checking…" : `✓ ${okText}`}
        </p>
      )}
    </div>
  );
}

/** The compile problems of a server's current policies (from a test run or a draft simulation), every one listed. */
export function CompileIssuesAlert({ title, issues }: { title: string; issues: { message: string; help?: string; policy?: { name: string } }[] }) {
  return (
    <div role="alert" className="space-y-1 rounded-md bg-rose-50 px-4 py-3 text-sm text-rose-900 ring-1 ring-inset ring-rose-200">
      <p className="font-semibold">{title}</p>
      <ul className="list-inside list-disc space-y-0.5">
        {issues.map((i, n) => (
          <li key={n}>
            {i.policy ? <span className="font-medium">Policy “{i.policy.name}”: </span> : null}
            {i.message}
            {i.help ? <span className="text-rose-700"> ({i.help})</span> : null}
          </li>
        ))}
      </ul>
    </div>
  );
}
