"use client";

import type { ReactNode } from "react";
import { Badge, Button, ConfirmButton, Time } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";
import { secretHint, useVaultWrite, type EntryAgents, type VaultEntry, type VaultVersionRow } from "./queries";

const statusColor = { current: "green", grace: "amber", scheduled: "blue", retired: "gray" } as const;

/** How many agents last reported holding `version` (from their heartbeats). */
const holding = (agents: EntryAgents | undefined, version: number) => agents?.items.filter((a) => a.use.state === "holds" && a.use.version === version).length ?? 0;

/**
 * Every version of an entry, newest first: what is current, in grace until when, scheduled at when, retired.
 * With `canWrite`, a grace version offers "End grace now" and an earlier version still in its retention
 * "Make current again" (each asks once); why another one cannot be restored is shown on it.
 */
export function VersionsTimeline({
  versions,
  entry,
  canWrite = false,
  agents,
  onMakeCurrent,
}: {
  versions: VaultVersionRow[];
  entry?: VaultEntry;
  canWrite?: boolean;
  agents?: EntryAgents;
  onMakeCurrent?: (v: VaultVersionRow) => void;
}) {
  const endGrace = useVaultWrite((version: number) => apiFetch<VaultEntry>(`/vault/${entry?.id}/end-grace`, { method: "POST", body: { version } }));
  const actions = (v: VaultVersionRow): ReactNode => {
    if (!entry || !canWrite) return null;
    const out: ReactNode[] = [];
    if (v.status === "grace") {
      const n = holding(agents, v.version);
      out.push(
        <ConfirmButton
          key="end"
          label="End grace now"
          title={`Stop accepting version ${v.version} now?`}
          body={
            <div className="space-y-2">
              <p>
                Version {v.version} is retired at once: the broker stops serving it and agents use version {entry.currentVersion} from their next call. The upstream will no longer receive version{" "}
                {v.version} from Mandate.
              </p>
              <p>
                {agents ? `${n} agent${n === 1 ? "" : "s"} last reported holding version ${v.version}.` : "Which agents still hold it is loading."} It stays restorable for 30 days with “Make current
                again”. This is recorded in the admin trail.
              </p>
            </div>
          }
          confirmLabel={`End grace of version ${v.version}`}
          onConfirm={() => endGrace.mutateAsync(v.version)}
        />,
      );
    }
    if (v.status !== "current" && v.status !== "scheduled" && !v.cannotRestore)
      out.push(
        <Button key="restore" variant="secondary" onClick={() => onMakeCurrent?.(v)}>
          Make current again
        </Button>,
      );
    return out.length ? <div className="mt-1 flex flex-wrap gap-2">{out}</div> : null;
  };
  return (
    <ol className="relative space-y-4 border-l border-slate-200 pl-5">
      {versions.map((v) => (
        <li key={v.version} className="relative" data-testid={`version-${v.version}`}>
          <span
            className={`absolute -left-[26px] top-1 h-3 w-3 rounded-full ring-2 ring-white ${v.status === "current" ? "bg-emerald-500" : v.status === "grace" ? "bg-amber-400" : v.status === "scheduled" ? "bg-indigo-400" : "bg-slate-300"}`}
          />
          <div className="flex flex-wrap items-center gap-2 text-sm">
            <span className="font-medium text-slate-900">Version {v.version}</span>
            <Badge color={statusColor[v.status]}>{v.status}</Badge>
            <code className="text-xs text-slate-600" title="Fingerprint (SHA-256 prefix) and last characters">
              {secretHint(v.fingerprint, v.lastChars)}
            </code>
          </div>
          <div className="mt-0.5 text-xs text-slate-500">
            {v.status === "scheduled" ? (
              <>
                becomes current at <Time iso={v.activatesAt} />
                {v.graceUntil ? (
                  <>
                    ; the version it replaces stays valid until <Time iso={v.graceUntil} />
                  </>
                ) : null}
              </>
            ) : v.status === "grace" ? (
              <>
                still accepted until <Time iso={v.graceUntil} />
              </>
            ) : v.status === "retired" ? (
              <>
                retired <Time iso={v.retiredAt} />
              </>
            ) : (
              <>
                current since <Time iso={v.activatesAt ?? v.createdAt} />
              </>
            )}
            {" · "}added by {v.createdBy} · sealed with {v.kekId}
            {agents && holding(agents, v.version) ? ` · held by ${holding(agents, v.version)} agent${holding(agents, v.version) === 1 ? "" : "s"}` : ""}
          </div>
          {canWrite && v.status === "retired" && v.cannotRestore ? <div className="mt-0.5 text-xs text-slate-400">{v.cannotRestore}.</div> : null}
          {actions(v)}
        </li>
      ))}
    </ol>
  );
}
