"use client";

import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { useState } from "react";
import { Badge, Button, ErrorBanner, Table, Td, TextField, Time } from "@/components/ui";
import { ApiError, apiFetch, qs } from "@/lib/client/api";
import type { ImpactExample, ImpactGroup, ImpactResult } from "@/lib/bundles/impact";

const MAX = 100_000;
const fmt = (n: number) => n.toLocaleString("en");

/** Where an example decision opens: the audit log filtered to it. */
export function auditHref(e: ImpactExample): string {
  const at = new Date(e.at).getTime();
  return `/audit${qs({ decision: e.id, from: new Date(at - 1000).toISOString(), to: new Date(at + 1000).toISOString(), serverId: e.serverId, tool: e.tool, user: e.user })}`;
}

/** "Impact on recent traffic": replays the last N decisions against the live bundle and the draft. */
export function ImpactPanel({ fleetId }: { fleetId: string }) {
  const [limit, setLimit] = useState("10000");
  const n = Number(limit);
  const invalid = !Number.isInteger(n) || n < 1 || n > MAX ? `Enter a whole number from 1 to ${fmt(MAX)}` : undefined;
  const run = useMutation({ mutationFn: () => apiFetch<ImpactResult>(`/fleets/${encodeURIComponent(fleetId)}/impact`, { method: "POST", body: { limit: n } }) });
  const err = run.error instanceof ApiError ? run.error : null;
  const r = run.data;
  return (
    <section aria-labelledby="impact-title" className="rounded-md p-3 ring-1 ring-slate-200" data-testid="impact-panel">
      <h3 id="impact-title" className="text-sm font-semibold text-slate-900">
        Impact on recent traffic
      </h3>
      <p className="mt-1 text-sm text-slate-600">
        Replays the most recent tool calls of this fleet against the live bundle and the draft, and shows which answers would change. Each decision is compared with the live bundle&apos;s replay, not
        with its stored outcome (it may have been decided under an older revision).
      </p>
      <form
        className="mt-3 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          if (!invalid) run.mutate();
        }}
      >
        <div className="w-48">
          <TextField label="Decisions to replay" type="number" min={1} max={MAX} step={1} value={limit} onChange={(e) => setLimit(e.target.value)} error={invalid ?? err?.field("limit")} />
        </div>
        <Button type="submit" variant="secondary" busy={run.isPending} disabled={Boolean(invalid)}>
          Run
        </Button>
      </form>
      {run.error && !err?.field("limit") ? (
        <div className="mt-3">
          <ErrorBanner error={run.error} />
          {err?.issues.length ? (
            <ul className="mt-1 list-disc pl-5 text-sm text-rose-800">
              {err.issues.map((i, k) => (
                <li key={k}>{i.message}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}
      {r ? <ImpactReport r={r} /> : null}
    </section>
  );
}

function ImpactReport({ r }: { r: ImpactResult }) {
  const t = r.totals;
  const flips = t.allowToDeny + t.denyToAllow;
  return (
    <div className="mt-4 space-y-4" data-testid="impact-result">
      <dl className="grid grid-cols-2 gap-3 text-sm sm:grid-cols-5">
        <Stat label="Replayed" value={fmt(t.replayed)} />
        <Stat label="Unchanged" value={fmt(t.unchanged)} />
        <Stat label="Allow → deny" value={fmt(t.allowToDeny)} tone={t.allowToDeny ? "red" : undefined} testId="impact-allow-to-deny" />
        <Stat label="Deny → allow" value={fmt(t.denyToAllow)} tone={t.denyToAllow ? "amber" : undefined} testId="impact-deny-to-allow" />
        <Stat label="Skipped" value={fmt(t.skipped)} />
      </dl>
      <p className="text-xs text-slate-500">
        {fmt(t.loaded)} decisions loaded
        {r.oldest ? (
          <>
            {" "}
            from <Time iso={r.oldest} /> to <Time iso={r.newest} />
          </>
        ) : null}
        ; live revision {r.baselineRevision ?? "none"} vs draft revision {r.draftRevision}; {r.timing.totalMs} ms (load {r.timing.loadMs} ms, replay {r.timing.replayMs} ms).
        {t.baselineDiffersFromStored ? ` ${fmt(t.baselineDiffersFromStored)} stored outcomes differ from the live bundle's replay (decided under another revision).` : ""}
      </p>
      {t.skipped ? (
        <ul className="list-disc pl-5 text-sm text-slate-700">
          {Object.entries(t.skippedReasons).map(([why, count]) => (
            <li key={why}>
              {fmt(count)} skipped: {why}
              {why === "masked arguments" ? " (a changed policy reads an argument the agent masked; replaying it would be a guess)" : ""}
            </li>
          ))}
        </ul>
      ) : null}
      {t.loaded === 0 ? <p className="text-sm text-slate-600">No tool call decision has been recorded for this fleet&apos;s servers yet.</p> : null}
      {t.loaded > 0 && flips === 0 ? (
        <p className="text-sm text-emerald-700" role="status">
          No replayed decision changes with this draft.
        </p>
      ) : null}
      {flips ? (
        <>
          <Groups title="By tool" groups={r.byTool} />
          <Groups title="By policy" groups={r.byPolicy} />
        </>
      ) : null}
    </div>
  );
}

function Stat({ label, value, tone, testId }: { label: string; value: string; tone?: "red" | "amber"; testId?: string }) {
  return (
    <div className="rounded-md bg-slate-50 px-3 py-2">
      <dt className="text-xs text-slate-500">{label}</dt>
      <dd className={tone === "red" ? "text-lg font-semibold text-rose-700" : tone === "amber" ? "text-lg font-semibold text-amber-700" : "text-lg font-semibold text-slate-900"} data-testid={testId}>
        {value}
      </dd>
    </div>
  );
}

function Groups({ title, groups }: { title: string; groups: ImpactGroup[] }) {
  return (
    <div>
      <h4 className="mb-2 text-sm font-semibold text-slate-900">{title}</h4>
      <div className="space-y-3">
        {groups.map((g) => (
          <details key={g.key} className="rounded-md ring-1 ring-slate-200">
            <summary className="flex cursor-pointer flex-wrap items-center gap-2 px-3 py-2 text-sm">
              <span className="font-medium">{g.label}</span>
              {g.allowToDeny ? <Badge color="red">{fmt(g.allowToDeny)} allow → deny</Badge> : null}
              {g.denyToAllow ? <Badge color="amber">{fmt(g.denyToAllow)} deny → allow</Badge> : null}
            </summary>
            <div className="px-3 pb-3">
              <Table head={["Decision", "When", "User", "Client", "Tool", "Arguments (as stored)", "Now → draft"]}>
                {g.examples.map((e) => (
                  <tr key={e.id}>
                    <Td>
                      <Link href={auditHref(e)} className="font-mono text-xs text-indigo-700 hover:underline" title="Open in the audit log">
                        {e.id}
                      </Link>
                    </Td>
                    <Td>
                      <Time iso={e.at} />
                    </Td>
                    <Td>{e.user}</Td>
                    <Td>{e.client}</Td>
                    <Td>
                      <code className="text-xs">{e.tool}</code>
                    </Td>
                    <Td className="max-w-xs">
                      <code className="block truncate text-xs" title={JSON.stringify(e.args)}>
                        {JSON.stringify(e.args)}
                      </code>
                    </Td>
                    <Td className="text-xs">
                      {e.before.decision} → <strong>{e.after.decision}</strong>
                      <div className="text-slate-500">{e.after.reason}</div>
                    </Td>
                  </tr>
                ))}
              </Table>
            </div>
          </details>
        ))}
      </div>
    </div>
  );
}
