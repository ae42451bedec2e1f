"use client";

import { useState, type FormEvent } from "react";
import { Button, Modal, TextArea } from "@/components/ui";
import { FormError, fieldError } from "./fields";

/** "Block tool": asks once, with the reason the trail will record. */
export function BlockToolButton({ toolName, disabled, onBlock }: { toolName: string; disabled?: boolean; onBlock: (reason: string) => Promise<unknown> }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button variant="secondary" disabled={disabled} onClick={() => setOpen(true)}>
        Block tool
      </Button>
      <Modal open={open} onClose={() => setOpen(false)} title={`Block ${toolName}?`}>
        <BlockForm toolName={toolName} onBlock={onBlock} onClose={() => setOpen(false)} />
      </Modal>
    </>
  );
}

function BlockForm({ toolName, onBlock, onClose }: { toolName: string; onBlock: (reason: string) => Promise<unknown>; onClose: () => void }) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [localError, setLocalError] = useState<string | null>(null);
  return (
    <form
      noValidate
      className="space-y-4 text-sm text-slate-700"
      onSubmit={async (e: FormEvent) => {
        e.preventDefault();
        if (reason.trim().length < 3) {
          setLocalError("Say why (at least 3 characters); the reason goes into the admin trail.");
          return;
        }
        setLocalError(null);
        setBusy(true);
        setError(null);
        try {
          await onBlock(reason.trim());
          onClose();
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <p>
        A blocked tool is never callable through any agent, whatever the scope mapping grants. <span className="font-mono">{toolName}</span> stays in the catalogue and can be unblocked later.
      </p>
      <TextArea
        label="Reason"
        required
        autoFocus
        rows={3}
        maxLength={500}
        value={reason}
        onChange={(e) => setReason(e.target.value)}
        error={localError ?? fieldError(error, "reason")}
        hint="Recorded in the admin trail and shown on the tool."
      />
      <FormError error={error} handled={["reason"]} />
      <div className="flex justify-end gap-2">
        <Button variant="secondary" onClick={onClose}>
          Cancel
        </Button>
        <Button type="submit" variant="danger" busy={busy}>
          Block tool
        </Button>
      </div>
    </form>
  );
}
