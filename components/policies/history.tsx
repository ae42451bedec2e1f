"use client";

import { useQueryClient } from "@tanstack/react-query";
import { Card, ConfirmButton, Time } from "@/components/ui";
import { TrailTable, type TrailEvent } from "@/components/trail/trail-table";
import { apiFetch, keys } from "@/lib/client/api";
import type { PublicPolicy } from "./types";

/** Trail events whose `after` is a whole version of the policy (lib/policy/restore.ts RESTORABLE_ACTIONS). */
const VERSION_ACTIONS = new Set(["policy.create", "policy.update", "policy.restore"]);

interface Version {
  name: string;
  enabled?: boolean;
  cedar: string;
  rule?: unknown;
}

const versionOf = (e: TrailEvent): Version | null => {
  const a = e.after as Partial<Version> | null;
  return VERSION_ACTIONS.has(e.action) && a && typeof a.name === "string" && typeof a.cedar === "string" ? (a as Version) : null;
};

/** Whether the version is what the policy is now (nothing to restore). */
const isCurrent = (v: Version, p: PublicPolicy) => v.name === p.name && v.cedar === p.cedar && (v.enabled === undefined || v.enabled === p.enabled);

/**
 * The policy's History card: every change (the admin trail of this policy),
 * each with "Restore this version", which makes the version the policy's
 * draft again through the same service as an edit (POST …/restore): validated
 * against today's schema, refused if the policy changed meanwhile, recorded
 * as policy.restore. `onRestored` lets the editor show the restored text and
 * offer to publish it.
 */
export function PolicyHistory({ policy, canWrite, dirty, onRestored }: { policy: PublicPolicy; canWrite: boolean; dirty: boolean; onRestored: (p: PublicPolicy, from: TrailEvent) => void }) {
  const qc = useQueryClient();
  const restore = async (e: TrailEvent) => {
    const saved = await apiFetch<PublicPolicy>(`/policies/${encodeURIComponent(policy.id)}/restore`, { method: "POST", body: { eventId: e.id, baseUpdatedAt: policy.updatedAt } });
    qc.setQueryData(keys.policies.byId(saved.id), saved);
    onRestored(saved, e);
    await qc.invalidateQueries({ queryKey: ["trail"] });
    await qc.invalidateQueries({ queryKey: keys.policies.all, refetchType: "none" });
    void qc.invalidateQueries({ queryKey: keys.fleets.all });
  };
  const action = (e: TrailEvent) => {
    const v = versionOf(e);
    if (!v || !canWrite) return null;
    if (isCurrent(v, policy))
      return (
        <span className="px-2 text-xs text-slate-500" data-testid="version-current">
          current
        </span>
      );
    if (policy.kind === "rule" && !v.rule) return <span className="px-2 text-xs text-slate-500">rule not recorded</span>;
    return (
      <ConfirmButton
        label="Restore this version"
        variant="primary"
        title="Restore this version?"
        body={
          <div className="space-y-2">
            <p>
              The policy becomes what it was after this change of <Time iso={e.at} /> by {e.actorLabel}: name <strong>{v.name}</strong>
              {v.enabled === undefined ? "" : v.enabled ? ", enabled" : ", disabled"}, and its {policy.kind === "rule" ? "rule" : "Cedar"}.
            </p>
            <p>It is saved as the draft, checked like an edit; nothing is enforced until you publish. The current version stays in this history.</p>
            {dirty ? <p className="font-medium text-amber-800">Your unsaved edits in the editor are replaced.</p> : null}
          </div>
        }
        confirmLabel="Restore"
        onConfirm={() => restore(e)}
      />
    );
  };
  return (
    <Card title="History">
      <p className="mb-2 text-xs text-slate-500">Every change of this policy, newest first; Details shows what changed, and any earlier version can be restored as the draft.</p>
      <TrailTable tenantId={policy.tenantId} targetType="policy" targetId={policy.id} limit={10} rowAction={action} />
    </Card>
  );
}
