"use client";

import Link from "next/link";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Button, ErrorBanner, Modal } from "@/components/ui";
import { applyRemedy, findingKeys, previewRemedy, type Finding, type PolicyRemedy, type RemedyApplied, type RemedyPreview } from "./queries";

/**
 * A policy-changing remedy: the button computes its impact on the traffic the
 * finding came from (nothing is written), the dialog shows it (zero allow →
 * deny flips, or the calls it would stop), and "Create draft" writes the draft
 * through the scope-mapping, catalogue or policy service. Publishing stays on
 * the fleet page (tests, impact analysis, publish).
 */
export function RemedyButton({ finding, action, label, disabled }: { finding: Finding; action: PolicyRemedy; label: string; disabled?: boolean }) {
  const [open, setOpen] = useState(false);
  const [preview, setPreview] = useState<RemedyPreview | null>(null);
  const [done, setDone] = useState<RemedyApplied | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // The list refreshes when the dialog closes, not on success: the remedied finding leaves the list, and this dialog with it.
  const qc = useQueryClient();
  const apply = useMutation({ mutationFn: applyRemedy });
  const close = () => {
    setOpen(false);
    if (done) void qc.invalidateQueries({ queryKey: findingKeys.all });
  };
  const start = async () => {
    setOpen(true);
    setPreview(null);
    setDone(null);
    setError(null);
    setBusy(true);
    try {
      setPreview(await previewRemedy({ finding, action }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const imp = preview?.impact;
  const flips = imp?.allowToDeny ?? 0;
  return (
    <>
      <Button variant="secondary" onClick={start} disabled={disabled} data-testid={`remedy-${action}`}>
        {label}
      </Button>
      <Modal open={open} onClose={close} title={done ? "Draft created" : "Remedy: impact on recent traffic"}>
        <div className="space-y-3 text-sm text-slate-700" data-testid="remedy-dialog">
          {busy && !preview ? <p>Replaying the window&apos;s decisions against the draft with and without this change…</p> : null}
          {preview && imp ? (
            <>
              <p>{preview.description}</p>
              {imp.issues.length ? (
                <ul className="list-disc pl-5 text-rose-700">
                  {imp.issues.map((i) => (
                    <li key={i}>{i}</li>
                  ))}
                </ul>
              ) : (
                <div className={flips ? "rounded-md bg-amber-50 p-3 text-amber-900" : "rounded-md bg-emerald-50 p-3 text-emerald-900"} data-testid="remedy-impact">
                  <p className="font-medium">
                    {flips ? `Would stop ${flips} call${flips > 1 ? "s" : ""}` : "0 allow → deny flips"} on {imp.replayed.toLocaleString()} decision{imp.replayed === 1 ? "" : "s"} since{" "}
                    {new Date(imp.since).toLocaleDateString()}
                  </p>
                  <p className="text-xs">
                    {imp.unchanged.toLocaleString()} unchanged, {imp.denyToAllow} deny → allow{imp.uncertain ? `, ${imp.uncertain} uncertain (masked arguments)` : ""}
                    {imp.limited ? "; the newest 50,000 were replayed" : ""}. Computed in {imp.tookMs} ms.
                  </p>
                  {imp.stoppedByTool.length ? (
                    <ul className="mt-2 list-disc pl-5">
                      {imp.stoppedByTool.map((s) => (
                        <li key={s.tool}>
                          {s.tool}: {s.calls} call{s.calls > 1 ? "s" : ""}
                        </li>
                      ))}
                    </ul>
                  ) : null}
                  {imp.examples.length ? (
                    <ul className="mt-2 space-y-1 text-xs">
                      {imp.examples.map((e) => (
                        <li key={e.id}>
                          <Link href={`/audit/${e.id}`} className="text-indigo-700 hover:underline">
                            {e.tool} by {e.user ?? "?"}
                          </Link>{" "}
                          ({e.before.decision} → {e.after.decision}: {e.after.reason})
                        </li>
                      ))}
                    </ul>
                  ) : null}
                </div>
              )}
            </>
          ) : null}
          {done ? (
            <div className="rounded-md bg-indigo-50 p-3 text-indigo-900" data-testid="remedy-done">
              <p className="font-medium">The draft is saved. It takes effect when a fleet serving this server publishes it (tests, impact analysis, publish):</p>
              <ul className="mt-1 list-disc pl-5">
                {done.publishIn.length ? (
                  done.publishIn.map((f) => (
                    <li key={f.id}>
                      <Link href={f.href} className="text-indigo-700 hover:underline">
                        {f.name}
                      </Link>
                    </li>
                  ))
                ) : (
                  <li>No fleet serves this server yet.</li>
                )}
              </ul>
            </div>
          ) : null}
          <ErrorBanner error={error ?? apply.error} />
          <div className="flex justify-end gap-2">
            <Button type="button" variant="secondary" onClick={close}>
              {done ? "Close" : "Cancel"}
            </Button>
            {preview && !done && !imp?.issues.length ? (
              <Button
                type="button"
                variant={flips ? "danger" : "primary"}
                busy={apply.isPending}
                onClick={async () => {
                  try {
                    setDone(await apply.mutateAsync({ finding, action, acknowledgeFlips: flips > 0 }));
                  } catch {
                    // shown by the banner
                  }
                }}
                data-testid="remedy-create"
              >
                {flips ? `Create draft anyway (stops ${flips})` : "Create draft"}
              </Button>
            ) : null}
          </div>
        </div>
      </Modal>
    </>
  );
}
