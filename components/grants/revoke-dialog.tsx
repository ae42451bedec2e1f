"use client";

import { useState, type ReactNode } from "react";
import { Button, ErrorBanner, Modal, TextField } from "@/components/ui";

/** A "Revoke" button that asks for confirmation and an optional reason, then runs `onRevoke`. */
export function RevokeButton({
  label,
  title,
  body,
  disabled,
  disabledReason,
  onRevoke,
  testId,
}: {
  label: string;
  title: string;
  body: ReactNode;
  disabled?: boolean;
  disabledReason?: string;
  onRevoke: (reason: string) => Promise<unknown>;
  testId?: string;
}) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <Button variant="secondary" disabled={disabled} title={disabled ? disabledReason : undefined} onClick={() => (setOpen(true), setError(null))} data-testid={testId}>
        {label}
      </Button>
      <Modal open={open} onClose={() => setOpen(false)} title={title}>
        <form
          className="space-y-4 text-sm text-slate-700"
          onSubmit={async (e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            try {
              await onRevoke(reason);
              setOpen(false);
              setReason("");
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <div>{body}</div>
          <TextField label="Reason (optional)" value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} hint="Shown in the revocation history and the admin trail." />
          <ErrorBanner error={error} />
          <div className="flex justify-end gap-2">
            <Button type="button" variant="secondary" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            <Button type="submit" variant="danger" busy={busy}>
              Revoke
            </Button>
          </div>
        </form>
      </Modal>
    </>
  );
}
