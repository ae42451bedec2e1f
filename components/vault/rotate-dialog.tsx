"use client";

import { useState } from "react";
import { FormActions, Modal, SelectField, TextField } from "@/components/ui";
import { ApiError, apiFetch } from "@/lib/client/api";
import { blankSecret, labelsFor, SecretFields, secretOf } from "./create-entry";
import { fieldError, FormError, localIssue } from "./errors";
import { useVaultWrite, type VaultEntry } from "./queries";

export const graceChoices: [number, string][] = [
  [0, "none: retire the old version at once"],
  [300, "5 minutes"],
  [3600, "1 hour"],
  [86_400, "1 day"],
  [7 * 86_400, "7 days"],
  [30 * 86_400, "30 days"],
];

/** Rotate: a new version, current now (the old one in grace) or scheduled at a time. */
export function RotateDialog({ entry, open, onClose }: { entry: VaultEntry; open: boolean; onClose: () => void }) {
  const [when, setWhen] = useState<"now" | "later">("now");
  const rotate = useVaultWrite((body: object) => apiFetch<VaultEntry>(`/vault/${entry.id}/rotate`, { method: "POST", body }));
  // A problem found before sending (blank secret, no time) or the API's answer: shown the same way, as sentences.
  const [local, setLocal] = useState<ApiError | null>(null);
  const error = local ?? rotate.error;
  const labels = labelsFor(entry.kind);
  const close = () => {
    setLocal(null);
    rotate.reset();
    onClose();
  };
  return (
    <Modal open={open} onClose={close} title={`Rotate ${entry.name}`}>
      <form
        noValidate
        autoComplete="off"
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const form = e.currentTarget;
          const d = new FormData(form);
          const kind = entry.kind;
          const secret = secretOf(kind, d);
          const local = String(d.get("activateAt") ?? "");
          const problem = blankSecret(kind, d) ?? (when === "later" && !local ? localIssue("activateAt", "must be set: choose when the new version becomes current, or pick Now") : null);
          setLocal(problem);
          if (problem) {
            rotate.reset();
            return;
          }
          const body = { secret, graceSeconds: Number(d.get("graceSeconds")), ...(when === "later" && local ? { activateAt: new Date(local).toISOString() } : {}) };
          rotate.mutate(body, {
            onSuccess: () => {
              form.reset();
              close();
            },
            onError: () => form.querySelectorAll<HTMLInputElement>("input[type=password]").forEach((i) => (i.value = "")),
          });
        }}
      >
        <p className="text-sm text-slate-600">
          The new secret becomes version {entry.versions.reduce((m, v) => Math.max(m, v.version), 0) + 1}. Agents pick up a new current version within seconds (the fleet&apos;s live bundle is
          republished).
        </p>
        <SecretFields kind={entry.kind} error={error} />
        <SelectField
          label="Keep the current version valid for"
          name="graceSeconds"
          defaultValue="3600"
          error={fieldError(error, "graceSeconds", labels)}
          hint="During the grace period agents may still use the old version (the upstream's own overlap)."
        >
          {graceChoices.map(([s, label]) => (
            <option key={s} value={s}>
              {label}
            </option>
          ))}
        </SelectField>
        <fieldset className="space-y-2">
          <legend className="text-sm font-medium text-slate-700">Activation</legend>
          <label className="flex items-center gap-2 text-sm">
            <input type="radio" name="when" checked={when === "now"} onChange={() => setWhen("now")} /> Now
          </label>
          <label className="flex items-center gap-2 text-sm">
            <input type="radio" name="when" checked={when === "later"} onChange={() => setWhen("later")} /> At a scheduled time
          </label>
          {when === "later" ? <TextField label="Activate at (your local time)" name="activateAt" type="datetime-local" error={fieldError(error, "activateAt", labels)} /> : null}
        </fieldset>
        <FormError error={error} labels={labels} />
        <FormActions onCancel={close} busy={rotate.isPending} submitLabel={when === "now" ? "Rotate now" : "Schedule rotation"} />
      </form>
    </Modal>
  );
}
