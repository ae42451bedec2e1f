"use client";

import { useState } from "react";
import { ExportButtons } from "@/components/audit/export-buttons";
import { RevokeButton } from "@/components/grants/revoke-dialog";
import { useMe } from "@/components/shell/context";
import { Button, EmptyState, ErrorBanner, SelectField, Time } from "@/components/ui";
import { FindingCard } from "./finding-card";
import { directRemedy, recomputeFindings, useFindingWrite, useFindings, type Finding, type FindingKind, type FindingList } from "./queries";

const kindLabels: Record<FindingKind, string> = {
  unused_scope_mapping: "Unused scope mappings",
  uncalled_tool: "Tools never called",
  unused_grant: "Unused grants",
  unseen_client: "Clients not seen",
  over_broad_user: "Users using a small part",
  over_broad_client: "Clients using a small part",
  vault_rotation_due: "Credentials past rotation",
  vault_never_rotated: "Credentials never rotated",
  vault_unused: "Credentials unused",
  agent_unseen: "Agents not seen",
  enrollment_token_unused: "Enrollment tokens unused",
};

/** The findings of a tenant (or of every tenant the viewer reads), by kind, with export. */
export function FindingsList({ tenantId }: { tenantId: string | null }) {
  const [kind, setKind] = useState<FindingKind | "">("");
  const q = useFindings({ tenantId: tenantId ?? undefined, kind: kind || undefined });
  const all = useFindings({ tenantId: tenantId ?? undefined });
  const counts = all.data?.counts;
  const recompute = useFindingWrite(recomputeFindings);
  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-end gap-2">
        <div className="w-full sm:w-72">
          <SelectField label="Kind" value={kind} onChange={(e) => setKind(e.target.value as FindingKind | "")}>
            <option value="">Every kind{all.data ? ` (${all.data.items.length})` : ""}</option>
            {(Object.keys(kindLabels) as FindingKind[]).map((k) => (
              <option key={k} value={k}>
                {kindLabels[k]}
                {counts ? ` (${counts[k] ?? 0})` : ""}
              </option>
            ))}
          </SelectField>
        </div>
        <ExportButtons path="/findings/export" params={() => ({ tenantId, kind: kind || undefined })} />
        <Button variant="secondary" busy={recompute.isPending} onClick={() => recompute.mutate({ tenantId: tenantId ?? undefined })} data-testid="findings-recompute">
          Recompute
        </Button>
      </div>
      <ErrorBanner error={recompute.error} />
      {counts ? (
        <ul className="flex flex-wrap gap-2 text-xs" aria-label="Findings per kind">
          {(Object.keys(kindLabels) as FindingKind[])
            .filter((k) => counts[k])
            .map((k) => (
              <li key={k}>
                <button
                  type="button"
                  onClick={() => setKind(k)}
                  className="rounded-full bg-slate-100 px-2 py-1 text-slate-700 ring-1 ring-slate-200 hover:bg-slate-200 focus-visible:outline-2 focus-visible:outline-indigo-600"
                >
                  {kindLabels[k]}: <strong>{counts[k]}</strong>
                </button>
              </li>
            ))}
        </ul>
      ) : null}
      <RevokeAllUnused findings={all.data?.items ?? []} />
      <ErrorBanner error={q.error} />
      {q.isPending ? (
        <p className="text-sm text-slate-500">Computing findings from the decision log…</p>
      ) : q.data && q.data.items.length === 0 ? (
        <EmptyState title={kind ? "No finding of this kind" : "No finding"}>
          Findings compare what scopes, grants, credentials and agents allow with what the decision log shows was used. None stands out {kind ? "for this kind " : ""}right now; as traffic arrives,
          come back or wait for the weekly digest.
        </EmptyState>
      ) : q.data ? (
        <>
          <p className="text-xs text-slate-500">
            {q.data.items.length} finding{q.data.items.length === 1 ? "" : "s"},{" "}
            <span data-testid="findings-computed-at">
              computed at <Time iso={q.data.computedAt} />
            </span>{" "}
            ({sourceText(q.data)}; answered in {q.data.tookMs} ms)
            {q.data.truncated ? " (the window had more usage groups than are read at once; some may be missing)" : ""}.
          </p>
          <ul className="space-y-3">
            {q.data.items.map((f) => (
              <FindingCard key={f.id} f={f} />
            ))}
          </ul>
        </>
      ) : null}
    </div>
  );
}

/** Where the list came from: the hourly job's stored result, a computation now, or both (per tenant). */
function sourceText(l: FindingList): string {
  if (l.source === "stored") return "stored by the hourly findings job or a Recompute";
  if (l.source === "live") return "computed now";
  const n = l.scopes.filter((s) => s.source === "live").length;
  return `stored, ${n} of ${l.scopes.length} part${l.scopes.length === 1 ? "" : "s"} computed now`;
}

/** "Revoke all": every unused grant shown that the viewer may revoke, one revocation each, through the existing grant revoke API. */
function RevokeAllUnused({ findings }: { findings: Finding[] }) {
  const me = useMe();
  const write = useFindingWrite(directRemedy);
  const mine = findings.filter((f) => f.kind === "unused_grant" && (me.globalRole === "owner" || me.tenants.find((t) => t.id === f.tenantId)?.role === "admin"));
  if (mine.length < 2) return null;
  return (
    <RevokeButton
      label={`Revoke all ${mine.length} unused grants`}
      title={`Revoke ${mine.length} unused grants`}
      body={
        <>
          Every agent will refuse, within about a second, the tokens issued before now of:
          <ul className="mt-2 max-h-40 list-disc overflow-y-auto pl-5">
            {mine.map((f) => (
              <li key={f.id}>
                <strong>{f.subject.label}</strong> on {f.subject.serverName ?? f.subject.serverId} ({f.tenantName})
              </li>
            ))}
          </ul>
        </>
      }
      onRevoke={async (reason) => {
        const failed: string[] = [];
        for (const f of mine) {
          const api = f.remedies.find((r) => r.action === "revoke_grant")?.api;
          if (!api) continue;
          try {
            await write.mutateAsync({ ...api, body: { reason } });
          } catch (e) {
            failed.push(`${f.subject.label}: ${e instanceof Error ? e.message : "failed"}`);
          }
        }
        if (failed.length) throw new Error(`Not revoked: ${failed.join("; ")}`);
      }}
      testId="revoke-all-unused"
    />
  );
}
