"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Button, Card, ErrorBanner, Modal, TextField } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";
import { findingKeys, useFindingWrite } from "./queries";

interface Settings {
  tenantId: string | null;
  unusedDays: number;
  smallSharePercent: number;
  webhook: string | null;
  lastDigestAt: string | null;
}

/** The window, the small-share threshold, the digest webhook (write-only) and a preview of the next digest. */
export function SettingsCard({ tenantId, canWrite }: { tenantId: string | null; canWrite: boolean }) {
  const key = [...findingKeys.all, "settings", tenantId] as const;
  const q = useQuery({ queryKey: key, queryFn: () => apiFetch<Settings>(`/findings/settings${qs({ tenantId })}`) });
  const save = useFindingWrite((body: Record<string, unknown>) => apiFetch<Settings>(`/findings/settings${qs({ tenantId })}`, { method: "PUT", body }));
  const [days, setDays] = useState("");
  const [share, setShare] = useState("");
  const [hook, setHook] = useState("");
  const [digest, setDigest] = useState<{ text: string } | null>(null);
  const [digestError, setDigestError] = useState<unknown>(null);
  const s = q.data;
  return (
    <Card title={tenantId ? "Settings and weekly digest" : "Fleet-wide settings and weekly digest (agents, enrollment tokens)"}>
      <ErrorBanner error={q.error ?? save.error} />
      {s ? (
        <form
          className="grid gap-3 sm:grid-cols-3"
          onSubmit={async (e) => {
            e.preventDefault();
            const body: Record<string, unknown> = {};
            if (days) body.unusedDays = Number(days);
            if (share) body.smallSharePercent = Number(share);
            if (hook) body.webhookUrl = hook === "-" ? null : hook;
            await save.mutateAsync(body).catch(() => undefined);
            setHook("");
          }}
        >
          <TextField label="Unused for (days)" type="number" min={1} max={365} placeholder={String(s.unusedDays)} value={days} onChange={(e) => setDays(e.target.value)} disabled={!canWrite} />
          <TextField label="Small share (%)" type="number" min={1} max={99} placeholder={String(s.smallSharePercent)} value={share} onChange={(e) => setShare(e.target.value)} disabled={!canWrite} />
          <TextField
            label="Digest webhook (Slack-compatible)"
            type="text"
            placeholder={s.webhook ?? "https://hooks.slack.com/services/…"}
            hint={s.webhook ? `Set (${s.webhook}); stored sealed, never shown. Enter - to remove.` : "Stored sealed, never shown again."}
            value={hook}
            onChange={(e) => setHook(e.target.value)}
            disabled={!canWrite}
          />
          <div className="flex flex-wrap items-center gap-2 sm:col-span-3">
            {canWrite ? (
              <Button type="submit" busy={save.isPending} disabled={!days && !share && !hook}>
                Save
              </Button>
            ) : null}
            <Button
              type="button"
              variant="secondary"
              onClick={async () => {
                setDigestError(null);
                try {
                  setDigest(await apiFetch<{ text: string }>(`/findings/digest${qs({ tenantId })}`));
                } catch (err) {
                  setDigestError(err);
                }
              }}
            >
              Preview the digest
            </Button>
            <span className="text-xs text-slate-500">Last digest: {s.lastDigestAt ? new Date(s.lastDigestAt).toLocaleString() : "none yet"} (weekly, new findings only)</span>
          </div>
        </form>
      ) : null}
      <ErrorBanner error={digestError} />
      <Modal open={digest !== null} onClose={() => setDigest(null)} title="Weekly digest (as it would be sent now)">
        <pre className="max-h-96 overflow-auto whitespace-pre-wrap rounded bg-slate-50 p-3 text-xs text-slate-800">{digest?.text}</pre>
      </Modal>
    </Card>
  );
}
