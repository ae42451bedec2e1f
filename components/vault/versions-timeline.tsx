"use client";

import { Badge, Time } from "@/components/ui";
import { secretHint, type VaultVersionRow } from "./queries";

const statusColor = { current: "green", grace: "amber", scheduled: "blue", retired: "gray" } as const;

/** Every version of an entry, newest first: what is current, in grace until when, scheduled at when, retired. */
export function VersionsTimeline({ versions }: { versions: VaultVersionRow[] }) {
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
          </div>
        </li>
      ))}
    </ol>
  );
}
