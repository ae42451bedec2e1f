"use client";

import type { getTool } from "@/lib/catalog/service";

export type ToolDetail = Awaited<ReturnType<typeof getTool>>;
export type ToolVersion = ToolDetail["history"][number];
export type DiffLine = NonNullable<ToolDetail["diff"]>[number];

/** The line diff between the approved and the latest definition. */
export function DiffView({ lines }: { lines: DiffLine[] }) {
  const added = lines.filter((l) => l.op === "add").length;
  const removed = lines.filter((l) => l.op === "del").length;
  return (
    <div>
      <p className="mb-2 text-xs text-slate-600">
        <span className="font-medium text-emerald-700">+{added} added</span> <span className="font-medium text-rose-700">−{removed} removed</span> lines
      </p>
      <div data-testid="diff" role="region" aria-label="Changes between the approved and the latest version" className="overflow-x-auto rounded-md ring-1 ring-slate-200">
        <div className="min-w-max font-mono text-xs leading-5 whitespace-pre">
          {lines.map((l, i) => (
            <div
              key={i}
              data-op={l.op}
              className={
                l.op === "add"
                  ? "bg-emerald-50 text-emerald-900"
                  : l.op === "del"
                    ? "bg-rose-50 text-rose-900"
                    : "text-slate-500"
              }
            >
              <span aria-hidden className="inline-block w-6 select-none text-center">
                {l.op === "add" ? "+" : l.op === "del" ? "-" : " "}
              </span>
              <span className="sr-only">{l.op === "add" ? "added: " : l.op === "del" ? "removed: " : ""}</span>
              {l.text || " "}
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}

function Json({ value }: { value: unknown }) {
  return <pre className="overflow-x-auto rounded-md bg-slate-50 p-2 font-mono text-xs leading-5 text-slate-800 ring-1 ring-inset ring-slate-200">{JSON.stringify(value, null, 2)}</pre>;
}

/** One full tool definition, as an agent would see it once approved. */
export function DefinitionView({ version }: { version: ToolVersion }) {
  return (
    <dl className="space-y-3 text-sm">
      <div>
        <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Title</dt>
        <dd className="mt-0.5 text-slate-900">{version.title ?? <span className="text-slate-400">none</span>}</dd>
      </div>
      <div>
        <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Description</dt>
        <dd className="mt-0.5 whitespace-pre-wrap text-slate-900">{version.description || <span className="text-slate-400">none</span>}</dd>
      </div>
      <div>
        <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Annotations</dt>
        <dd className="mt-0.5">
          <Json value={version.annotations} />
        </dd>
      </div>
      <div>
        <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Input schema</dt>
        <dd className="mt-0.5">
          <Json value={version.inputSchema} />
        </dd>
      </div>
      {version.outputSchema ? (
        <div>
          <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Output schema</dt>
          <dd className="mt-0.5">
            <Json value={version.outputSchema} />
          </dd>
        </div>
      ) : null}
      <div className="text-xs text-slate-500">
        hash <code className="font-mono">{version.hash}</code>
      </div>
    </dl>
  );
}
