"use client";

import { useId, type ReactNode } from "react";
import { ApiError } from "@/lib/client/api";
import { ErrorBanner } from "@/components/ui";

/** A checkbox with its label to the right (and an optional description). */
export function Checkbox({ label, checked, onChange, disabled, hint }: { label: ReactNode; checked: boolean; onChange: (v: boolean) => void; disabled?: boolean; hint?: string }) {
  const id = useId();
  return (
    <div className="flex items-start gap-2">
      <input
        id={id}
        type="checkbox"
        checked={checked}
        disabled={disabled}
        aria-describedby={hint ? `${id}-hint` : undefined}
        onChange={(e) => onChange(e.target.checked)}
        className="mt-0.5 h-4 w-4 rounded border-slate-300 text-indigo-600 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600"
      />
      <div className="text-sm">
        <label htmlFor={id} className="font-medium text-slate-700">
          {label}
        </label>
        {hint ? (
          <p id={`${id}-hint`} className="text-xs text-slate-500">
            {hint}
          </p>
        ) : null}
      </div>
    </div>
  );
}

/**
 * The general error of a form: the API message, plus any field issues the
 * form has no place for (so nothing the server said is lost).
 */
export function FormError({ error, handled }: { error: unknown; handled: string[] }) {
  if (!error) return null;
  const orphans = error instanceof ApiError ? error.issues.filter((i) => !handled.some((p) => i.path === p || i.path.startsWith(`${p}.`))) : [];
  return (
    <div className="space-y-1">
      <ErrorBanner error={error} />
      {orphans.length ? (
        <ul className="list-inside list-disc text-xs text-rose-700">
          {orphans.map((i, n) => (
            <li key={n}>
              {i.path ? <code className="font-mono">{i.path}</code> : null}
              {i.path ? ": " : ""}
              {i.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** `err.field(path)` when err is an ApiError. */
export const fieldError = (err: unknown, path: string) => (err instanceof ApiError ? err.field(path) : undefined);

/** A definition-list row for detail cards. */
export function DetailRow({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-1 gap-1 py-2 sm:grid-cols-4 sm:gap-4">
      <dt className="text-sm font-medium text-slate-500">{label}</dt>
      <dd className="min-w-0 text-sm break-words text-slate-900 sm:col-span-3">{children}</dd>
    </div>
  );
}
