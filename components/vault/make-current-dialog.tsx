"use client";

import { FormActions, Modal, SelectField } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";
import { baseLabels, fieldError, FormError } from "./errors";
import { secretHint, useVaultWrite, type VaultEntry, type VaultVersionRow } from "./queries";
import { graceChoices } from "./rotate-dialog";

/**
 * "Make this version current again": the one confirmation of a rollback. Says
 * what happens to the version in use now (grace or retired), to a pending
 * scheduled version, and how agents switch.
 */
export function MakeCurrentDialog({ entry, version, onClose }: { entry: VaultEntry; version: VaultVersionRow | null; onClose: () => void }) {
  const restore = useVaultWrite((body: { version: number; replacing: number; graceSeconds: number }) => apiFetch<VaultEntry>(`/vault/${entry.id}/make-current`, { method: "POST", body }));
  const scheduled = entry.versions.find((v) => v.status === "scheduled");
  const labels = { ...baseLabels, graceSeconds: "Grace period for the replaced version" };
  const close = () => {
    restore.reset();
    onClose();
  };
  return (
    <Modal open={version !== null} onClose={close} title={version ? `Make version ${version.version} current again?` : "Make current again"}>
      {version ? (
        <form
          className="space-y-4 text-sm text-slate-700"
          onSubmit={(e) => {
            e.preventDefault();
            const d = new FormData(e.currentTarget);
            restore.mutate({ version: version.version, replacing: entry.currentVersion, graceSeconds: Number(d.get("graceSeconds")) }, { onSuccess: close });
          }}
        >
          <p>
            Version {version.version} (<code className="text-xs">{secretHint(version.fingerprint, version.lastChars)}</code>) becomes the current secret of <strong>{entry.name}</strong>. Agents switch
            to it within seconds, through the fleets&apos; live bundle, as after a rotation. Make sure the upstream still accepts it.
          </p>
          <ul className="list-disc space-y-1 pl-5">
            <li>Version {entry.currentVersion}, current now, stays valid for the grace period you choose, then is retired.</li>
            {scheduled ? <li>The scheduled version {scheduled.version} is cancelled.</li> : null}
            <li>The entry&apos;s age counts from when version {version.version} first became current, so it may show as due for rotation.</li>
          </ul>
          <SelectField label="Keep version in use now valid for" name="graceSeconds" defaultValue="3600" error={fieldError(restore.error, "graceSeconds", labels)}>
            {graceChoices.map(([s, label]) => (
              <option key={s} value={s}>
                {label.replace("the old version", `version ${entry.currentVersion}`)}
              </option>
            ))}
          </SelectField>
          <FormError error={restore.error} labels={labels} />
          <FormActions onCancel={close} busy={restore.isPending} submitLabel={`Make version ${version.version} current`} />
        </form>
      ) : null}
    </Modal>
  );
}
