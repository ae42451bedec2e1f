"use client";

import { FormActions, Modal, TextArea, TextField } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";
import { baseLabels, fieldError, FormError } from "./errors";
import { useVaultWrite, type VaultEntry } from "./queries";

/** Metadata only: the secret changes by rotation. */
export function EditEntry({ entry, open, onClose }: { entry: VaultEntry; open: boolean; onClose: () => void }) {
  const update = useVaultWrite((body: object) => apiFetch<VaultEntry>(`/vault/${entry.id}`, { method: "PATCH", body }));
  const labels = { ...baseLabels, "placement.name": entry.placement.in === "query" ? "Query parameter" : "Header" };
  const err = (p: string) => fieldError(update.error, p, labels);
  return (
    <Modal open={open} onClose={onClose} title={`Edit ${entry.name}`}>
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const d = new FormData(e.currentTarget);
          const interval = String(d.get("rotationIntervalDays") ?? "").trim();
          update.mutate(
            {
              name: d.get("name"),
              owner: d.get("owner"),
              notes: d.get("notes"),
              rotationIntervalDays: interval ? Number(interval) : null,
              placement: { in: entry.placement.in, name: d.get("placementName") },
            },
            { onSuccess: onClose },
          );
        }}
      >
        <TextField label="Name" name="name" defaultValue={entry.name} error={err("name")} />
        <TextField label={entry.placement.in === "query" ? "Query parameter" : "Header"} name="placementName" defaultValue={entry.placement.name} error={err("placement.name")} />
        <TextField label="Owner" name="owner" defaultValue={entry.owner} error={err("owner")} />
        <TextField label="Rotate every (days)" name="rotationIntervalDays" type="number" min={1} max={3650} defaultValue={entry.rotationIntervalDays ?? ""} error={err("rotationIntervalDays")} />
        <TextArea label="Notes" name="notes" rows={3} defaultValue={entry.notes} error={err("notes")} />
        <FormError error={update.error} labels={labels} />
        <FormActions onCancel={onClose} busy={update.isPending} submitLabel="Save" />
      </form>
    </Modal>
  );
}
