"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Button } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { ImportSummary } from "@/lib/client/types";

/** POST /servers/{id}/import and refresh everything the import can change. */
export function useImportCatalog(serverId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => apiFetch<ImportSummary>(`/servers/${encodeURIComponent(serverId)}/import`, { method: "POST" }),
    // Success or failure, the server's last import time/error changed.
    onSettled: () => Promise.all([qc.invalidateQueries({ queryKey: keys.tools.all }), qc.invalidateQueries({ queryKey: keys.servers.all })]),
  });
}

function NameList({ names }: { names: string[] }) {
  if (!names.length) return null;
  const shown = names.slice(0, 30);
  return (
    <span className="font-mono text-xs text-slate-600">
      {shown.join(", ")}
      {names.length > shown.length ? ` and ${names.length - shown.length} more` : ""}
    </span>
  );
}

/** What an import did, or why it could not reach the upstream server. */
export function ImportResult({ result, error, onDismiss }: { result: ImportSummary | undefined; error: unknown; onDismiss: () => void }) {
  if (error) {
    const upstream = error instanceof ApiError && error.code === "upstream_error";
    return (
      <div role="alert" className="rounded-lg bg-rose-50 px-4 py-3 text-sm text-rose-900 ring-1 ring-inset ring-rose-200">
        <div className="flex items-start justify-between gap-4">
          <div>
            <p className="font-semibold">{upstream ? "The upstream server could not be read" : "Import failed"}</p>
            <p className="mt-1">{error instanceof Error ? error.message : "Something went wrong"}</p>
            {upstream ? <p className="mt-1 text-rose-800">Nothing in the catalogue changed. Check the upstream URL on the Overview tab and that the server answers MCP tools/list.</p> : null}
          </div>
          <Button variant="ghost" onClick={onDismiss}>
            Dismiss
          </Button>
        </div>
      </div>
    );
  }
  if (!result) return null;
  const rows: { label: string; names: string[]; tone: string; note?: string }[] = [
    { label: "Added", names: result.added, tone: "text-indigo-700", note: "new, pending review" },
    { label: "Changed", names: result.changed, tone: "text-amber-700", note: "pending review; the approved version stays in force" },
    { label: "Unchanged", names: result.unchanged, tone: "text-slate-700" },
    { label: "Removed upstream", names: result.removed, tone: "text-slate-700", note: "flagged, not deleted" },
  ];
  const pending = result.added.length + result.changed.length;
  return (
    <section aria-label="Import result" role="status" className="rounded-lg bg-white px-4 py-3 text-sm shadow-sm ring-1 ring-slate-200">
      <div className="flex items-start justify-between gap-4">
        <div className="space-y-1.5">
          <p className="font-semibold text-slate-900">Import finished{pending ? `: ${pending} tool${pending === 1 ? "" : "s"} to review` : ": nothing to review"}</p>
          <dl className="space-y-1">
            {rows.map((r) => (
              <div key={r.label} className="flex flex-wrap items-baseline gap-x-2">
                <dt className={`w-36 shrink-0 font-medium ${r.tone}`}>
                  {r.label}: <span data-testid={`import-${r.label.split(" ")[0]!.toLowerCase()}`}>{r.names.length}</span>
                </dt>
                <dd className="min-w-0 flex-1">
                  <NameList names={r.names} />
                  {r.names.length && r.note ? <span className="ml-1 text-xs text-slate-500">({r.note})</span> : null}
                </dd>
              </div>
            ))}
            <div className="flex flex-wrap items-baseline gap-x-2">
              <dt className={`w-36 shrink-0 font-medium ${result.skipped.length ? "text-rose-700" : "text-slate-700"}`}>
                Skipped: <span data-testid="import-skipped">{result.skipped.length}</span>
              </dt>
              <dd className="min-w-0 flex-1">
                {result.skipped.length ? (
                  <ul className="space-y-0.5 text-xs">
                    {result.skipped.map((s, i) => (
                      <li key={i}>
                        <span className="font-mono">{s.name || "(unnamed)"}</span>: <span className="text-slate-600">{s.reason}</span>
                      </li>
                    ))}
                  </ul>
                ) : null}
              </dd>
            </div>
          </dl>
          <OtherKinds entries={result.entries} />
        </div>
        <Button variant="ghost" onClick={onDismiss}>
          Dismiss
        </Button>
      </div>
    </section>
  );
}

/** Resources, templates and prompts the import saw: one line per kind it listed anything of. */
function OtherKinds({ entries }: { entries: ImportSummary["entries"] | undefined }) {
  if (!entries) return null;
  const kinds = [
    { label: "Resources", s: entries.resource },
    { label: "Resource templates", s: entries.resourceTemplate },
    { label: "Prompts", s: entries.prompt },
  ].filter((k) => k.s && k.s.added.length + k.s.changed.length + k.s.unchanged.length + k.s.removed.length + k.s.skipped.length > 0);
  if (!kinds.length) return null;
  return (
    <ul className="space-y-0.5 text-slate-700" data-testid="import-other-kinds">
      {kinds.map(({ label, s }) => (
        <li key={label}>
          <span className="font-medium">{label}:</span> {s.added.length} added, {s.changed.length} changed, {s.unchanged.length} unchanged, {s.removed.length} removed upstream
          {s.skipped.length ? (
            <span className="text-rose-700">
              , {s.skipped.length} skipped ({s.skipped.map((x) => `${x.name}: ${x.reason}`).join("; ")})
            </span>
          ) : null}
          {s.added.length + s.changed.length ? <span className="text-xs text-slate-500"> (pending review)</span> : null}
        </li>
      ))}
    </ul>
  );
}
