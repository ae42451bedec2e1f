"use client";

import { Button } from "@/components/ui";
import type { getTool } from "@/lib/catalog/service";

export type ToolDetail = Awaited<ReturnType<typeof getTool>>;
/** A version with its full definition (the approved and the latest; any other one by id). */
export type ToolVersion = ToolDetail["latestVersion"];
/** A version of the history page: no definition, only its size. */
export type ToolVersionSummary = ToolDetail["history"][number];
export type DiffLine = NonNullable<ToolDetail["diff"]>[number];
export type DiffTruncation = NonNullable<ToolDetail["diffTruncated"]>;

/** Saves one version's full definition as a JSON file (the diff and the views below are cut for size). */
export function downloadVersion(toolName: string, v: ToolVersion) {
  const { id, version, title, description, inputSchema, outputSchema, annotations, definition, hash } = v;
  const blob = new Blob([jsonText({ id, version, name: toolName, title, description, inputSchema, outputSchema, annotations, ...(definition ? { definition } : {}), hash }, Infinity)], {
    type: "application/json",
  });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = `${toolName}-v${version}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Both versions as downloads: offered whenever what is shown is not the whole of them. */
export function DownloadVersions({ toolName, versions }: { toolName: string; versions: ToolVersion[] }) {
  return (
    <span className="inline-flex flex-wrap gap-2">
      {versions.map((v) => (
        <Button key={v.id} type="button" variant="secondary" onClick={() => downloadVersion(toolName, v)}>
          Download version {v.version}
        </Button>
      ))}
    </span>
  );
}

/** The line diff between the approved and the latest definition (bounded by the server; `truncated` says what was left out). */
export function DiffView({ lines, truncated, toolName, versions }: { lines: DiffLine[]; truncated?: DiffTruncation | null; toolName?: string; versions?: ToolVersion[] }) {
  const added = lines.filter((l) => l.op === "add").length;
  const removed = lines.filter((l) => l.op === "del").length;
  return (
    <div>
      {truncated ? (
        <div role="note" data-testid="diff-truncated" className="mb-3 space-y-2 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
          <p>
            <span className="font-semibold">Diff too large.</span>{" "}
            {truncated.reason === "too_different"
              ? `The versions differ too much to compare in full (${truncated.beforeLines.toLocaleString()} and ${truncated.afterLines.toLocaleString()} lines): showing the changes in the first ${truncated.comparedLines.toLocaleString()} lines.`
              : `The versions have ${truncated.beforeLines.toLocaleString()} and ${truncated.afterLines.toLocaleString()} lines: showing the changes in the first ${truncated.comparedLines.toLocaleString()}.`}{" "}
            Download both versions to review the whole change.
          </p>
          {toolName && versions?.length ? <DownloadVersions toolName={toolName} versions={versions} /> : null}
        </div>
      ) : null}
      <p className="mb-2 text-xs text-slate-600">
        <span className="font-medium text-emerald-700">+{added} added</span> <span className="font-medium text-rose-700">−{removed} removed</span> lines
        {truncated ? " shown" : ""}
      </p>
      <div data-testid="diff" role="region" aria-label="Changes between the approved and the latest version" className="overflow-x-auto rounded-md ring-1 ring-slate-200">
        <div className="min-w-max font-mono text-xs leading-5 whitespace-pre">
          {lines.map((l, i) => (
            <div key={i} data-op={l.op} className={l.op === "add" ? "bg-emerald-50 text-emerald-900" : l.op === "del" ? "bg-rose-50 text-rose-900" : "text-slate-500"}>
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

/** Characters of one JSON value rendered on the page. */
const MAX_JSON_CHARS = 200_000;

/** Pretty JSON, compact when nested deeper than 32 (indentation would grow with a hostile depth), cut at `max` characters. */
function jsonText(value: unknown, max: number): string {
  let depth = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length && depth <= 32) {
    const [v, d] = stack.pop()!;
    if (!v || typeof v !== "object") continue;
    depth = Math.max(depth, d + 1);
    for (const c of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) if (c && typeof c === "object") stack.push([c, d + 1]);
  }
  const text = JSON.stringify(value ?? null, null, depth > 32 ? undefined : 2);
  return text.length > max ? `${text.slice(0, max)}\n… (cut at ${max.toLocaleString()} characters: download the version for all of it)` : text;
}

function Json({ value }: { value: unknown }) {
  return <pre className="overflow-x-auto rounded-md bg-slate-50 p-2 font-mono text-xs leading-5 text-slate-800 ring-1 ring-inset ring-slate-200">{jsonText(value, MAX_JSON_CHARS)}</pre>;
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
      {version.definition ? (
        <div>
          <dt className="text-xs font-semibold uppercase tracking-wide text-slate-500">Listed definition</dt>
          <dd className="mt-0.5">
            <Json value={version.definition} />
          </dd>
        </div>
      ) : null}
      <div className="text-xs text-slate-500">
        hash <code className="font-mono">{version.hash}</code>
      </div>
    </dl>
  );
}
