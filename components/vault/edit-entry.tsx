"use client";

import { ErrorBanner, FormActions, Modal, TextArea, TextField } from "@/components/ui";
import { ApiError, apiFetch } from "@/lib/client/api";
import { useVaultWrite, type VaultEntry } from "./queries";

/** Metadata only: the secret changes by rotation. */
export function EditEntry({ entry, open, onClose }: { entry: VaultEntry; open: boolean; onClose: () => void }) {
  const update = useVaultWrite((body: object) => apiFetch<VaultEntry>(`/vault/${entry.id}`, { method: "PATCH", body }));
  const err = update.error instanceof ApiError ? update.error : null;
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
        <TextField label="Name" name="name" defaultValue={entry.name} error={err?.field("name")} />
        <TextField label={entry.placement.in === "query" ? "Query parameter" : "Header"} name="placementName" defaultValue={entry.placement.name} error={err?.field("placement.name")} />
        <TextField label="Owner" name="owner" defaultValue={entry.owner} error={err?.field("owner")} />
        <TextField
          label="Rotate every (days)"
          name="rotationIntervalDays"
          type="number"
          min={1}
          max={3650}
          defaultValue={entry.rotationIntervalDays ?? ""}
          error={err?.field("rotationIntervalDays")}
        />
        <TextArea label="Notes" name="notes" rows={3} defaultValue={entry.notes} error={err?.field("notes")} />
        <ErrorBanner error={update.error} />
        <FormActions onCancel={onClose} busy={update.isPending} submitLabel="Save" />
      </form>
    </Modal>
  );
}
