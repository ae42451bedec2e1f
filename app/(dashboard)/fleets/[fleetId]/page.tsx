"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useParams } from "next/navigation";
import { useState } from "react";
import { DiffView, type BundleDiff } from "@/components/fleets/diff-view";
import { ImpactPanel } from "@/components/fleets/impact-panel";
import { useMe } from "@/components/shell/context";
import { Badge, Button, Card, ConfirmButton, CopyOnce, EmptyState, ErrorBanner, Modal, PageHeader, Table, Td, TextField, Time } from "@/components/ui";
import { ApiError, apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

interface Agent {
  id: string;
  name: string;
  version: string | null;
  bundleRevision: number | null;
  lastSeenAt: string | null;
  lastError: string | null;
  revokedAt: string | null;
}
interface Fleet {
  id: string;
  name: string;
  description: string;
  activeRevision: number | null;
  serverIds: string[];
  agents: Agent[];
}
interface Draft {
  revision: number;
  activeRevision: number | null;
  blockers: { path: string; message: string }[];
  warnings: string[];
  tests: { id: string; name: string; expected: string; actual: string; passed: boolean }[];
  /** Tenants whose own failing test or policy holds their part of the draft at the live revision. */
  heldBack: { tenantId: string; problems: string[] }[];
  diff: BundleDiff;
}
interface Revision {
  id: string;
  revision: number;
  parentRevision: number | null;
  sha256: string;
  keyId: string;
  note: string;
  rolledBackFrom: number | null;
  createdBy: string;
  createdAt: string;
}

export default function FleetPage() {
  const { fleetId } = useParams<{ fleetId: string }>();
  const me = useMe();
  const isOwner = me.globalRole === "owner";
  const fleet = useQuery({ queryKey: keys.fleets.byId(fleetId), queryFn: () => apiFetch<Fleet>(`/fleets/${fleetId}`) });
  const servers = useQuery({ queryKey: keys.servers.list({ pageSize: 100 }), queryFn: () => apiFetch<Page<PublicServer>>("/servers?pageSize=100") });

  if (fleet.error)
    return (
      <EmptyState title="Fleet not found">{fleet.error instanceof ApiError && fleet.error.status === 404 ? "It does not exist, or serves no server you can see." : fleet.error.message}</EmptyState>
    );
  if (!fleet.data) return <p className="text-sm text-slate-500">Loading…</p>;
  const f = fleet.data;
  const serverName = (id: string) => servers.data?.items.find((s) => s.id === id)?.name ?? id;

  return (
    <>
      <PageHeader
        title={
          <span className="flex items-center gap-2">
            {f.name} {f.activeRevision ? <Badge color="green">live: revision {f.activeRevision}</Badge> : <Badge color="amber">nothing published</Badge>}
          </span>
        }
        description={f.description || `Serves ${f.serverIds.map(serverName).join(", ") || "no server yet"}.`}
      />
      <div className="space-y-6">
        {me.globalRole !== "member" ? (
          <div id="publish" className="scroll-mt-4">
            <PublishPanel fleetId={fleetId} canPublish={isOwner} agentCount={f.agents.filter((a) => !a.revokedAt).length} />
          </div>
        ) : null}
        {me.globalRole !== "member" ? <History fleetId={fleetId} canRollback={isOwner} /> : null}
        <Agents fleet={f} canManage={isOwner} />
      </div>
    </>
  );
}

/** A key that changes with the draft's content (its revision number alone does not). */
function draftKey(d: Draft): string {
  const text = `${d.revision}:${d.activeRevision}:${JSON.stringify(d.diff)}`;
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return `${d.revision}-${text.length}-${h >>> 0}`;
}

/** "2 policies changed, 1 scope mapping added" — what a publish changes, in one line. */
function changeSummary(diff: BundleDiff): string {
  const names: [keyof BundleDiff, string, string][] = [
    ["policies", "policy", "policies"],
    ["mappings", "scope mapping", "scope mappings"],
    ["tools", "approved tool", "approved tools"],
    ["servers", "server", "servers"],
  ];
  const parts: string[] = [];
  for (const [k, one, many] of names)
    for (const kind of ["added", "removed", "changed"] as const) {
      const n = diff[k][kind].length;
      if (n) parts.push(`${n} ${n === 1 ? one : many} ${kind}`);
    }
  return parts.length ? `Changes: ${parts.join(", ")}.` : "No policy, mapping, tool or server changes: it republishes the live rules with the current live state.";
}

function PublishPanel({ fleetId, canPublish, agentCount }: { fleetId: string; canPublish: boolean; agentCount: number }) {
  const qc = useQueryClient();
  const draft = useQuery({ queryKey: keys.fleets.draft(fleetId), queryFn: () => apiFetch<Draft>(`/fleets/${fleetId}/draft`) });
  const [note, setNote] = useState("");
  const publish = useMutation({
    mutationFn: () => apiFetch<Revision & { heldBack: Draft["heldBack"] }>(`/fleets/${fleetId}/bundles`, { method: "POST", body: { note } }),
    onSuccess: () => {
      setNote("");
      void qc.invalidateQueries({ queryKey: keys.fleets.byId(fleetId) });
      void qc.invalidateQueries({ queryKey: ["fleets"] });
    },
    onSettled: () => qc.invalidateQueries({ queryKey: keys.fleets.draft(fleetId) }),
  });
  const d = draft.data;
  const failures = publish.error instanceof ApiError ? publish.error.issues : [];
  const blockers = failures.length ? failures : (d?.blockers ?? []);
  const passed = d?.tests.filter((t) => t.passed).length ?? 0;
  return (
    <Card
      title={d ? `Draft: revision ${d.revision}` : "Draft"}
      actions={
        <Button variant="secondary" onClick={() => draft.refetch()} busy={draft.isFetching}>
          Recompile
        </Button>
      }
    >
      <ErrorBanner error={draft.error} />
      {d ? (
        <div className="space-y-4">
          <div className="flex flex-wrap items-center gap-3 text-sm">
            <span data-testid="draft-tests">
              Tests: {passed} passed, {d.tests.length - passed} failed
            </span>
            {blockers.length ? <Badge color="red">publishing blocked</Badge> : <Badge color="green">ready to publish</Badge>}
          </div>
          {blockers.length ? (
            <div role="alert" className="rounded-md bg-rose-50 p-3 ring-1 ring-rose-200">
              <p className="text-sm font-semibold text-rose-900">Fix these before publishing:</p>
              <ul className="mt-1 list-disc pl-5 text-sm text-rose-800" data-testid="publish-blockers">
                {blockers.map((b, i) => (
                  <li key={i}>{b.message}</li>
                ))}
              </ul>
            </div>
          ) : null}
          {d.heldBack.length ? (
            <div role="status" className="rounded-md bg-amber-50 p-3 ring-1 ring-amber-200" data-testid="publish-held-back">
              <p className="text-sm font-semibold text-amber-900">
                Held at the live revision (these tenants&apos; policies are not published until their problems are fixed; other tenants are not blocked):
              </p>
              <ul className="mt-1 space-y-1 text-sm text-amber-900">
                {d.heldBack.map((h) => (
                  <li key={h.tenantId}>
                    <code className="text-xs">{h.tenantId}</code>
                    <ul className="list-disc pl-5">
                      {h.problems.map((p, i) => (
                        <li key={i}>{p}</li>
                      ))}
                    </ul>
                  </li>
                ))}
              </ul>
            </div>
          ) : null}
          {d.warnings.length ? (
            <ul className="list-disc pl-5 text-sm text-amber-800">
              {d.warnings.map((w, i) => (
                <li key={i}>{w}</li>
              ))}
            </ul>
          ) : null}
          <div>
            <h3 className="mb-2 text-sm font-semibold text-slate-900">Changes against {d.activeRevision ? `revision ${d.activeRevision}` : "nothing published"}</h3>
            <DiffView diff={d.diff} />
          </div>
          {/* Keyed by the draft's content: an impact result from an older draft is cleared when the draft changes. */}
          {blockers.some((x) => !x.path.startsWith("tests.")) ? null : <ImpactPanel key={draftKey(d)} fleetId={fleetId} />}
          {canPublish ? (
            <div className="flex flex-wrap items-end gap-2">
              <div className="min-w-64 flex-1">
                <TextField label="Note (optional)" value={note} onChange={(e) => setNote(e.target.value)} placeholder="What and why" />
              </div>
              <ConfirmButton
                variant="primary"
                label={`Publish revision ${d.revision}`}
                disabled={blockers.length > 0 || publish.isPending}
                title={`Publish revision ${d.revision}?`}
                body={
                  <div className="space-y-2" data-testid="publish-confirm">
                    <p>
                      Signs the draft as revision {d.revision}; {agentCount === 1 ? "the fleet's agent enforces" : `the fleet's ${agentCount} agents enforce`} it as soon as they fetch it (within
                      seconds).
                    </p>
                    <p>{changeSummary(d.diff)}</p>
                    <p>Revision {d.activeRevision ?? "—"} stays in the history: you can roll back to it.</p>
                  </div>
                }
                confirmLabel="Publish"
                onConfirm={() => publish.mutateAsync()}
              />
            </div>
          ) : null}
          {publish.isSuccess ? (
            <p className="text-sm text-emerald-700" role="status">
              Published revision {publish.data.revision}.{publish.data.heldBack.length ? ` Held at the live revision: ${publish.data.heldBack.map((h) => h.tenantId).join(", ")}.` : ""}
            </p>
          ) : null}
          {publish.error && !failures.length ? <ErrorBanner error={publish.error} /> : null}
        </div>
      ) : null}
    </Card>
  );
}

function History({ fleetId, canRollback }: { fleetId: string; canRollback: boolean }) {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: keys.fleets.bundles(fleetId), queryFn: () => apiFetch<{ activeRevision: number | null; items: Revision[] }>(`/fleets/${fleetId}/bundles`) });
  const [pair, setPair] = useState<{ from: number; to: number } | null>(null);
  const diff = useQuery({
    queryKey: pair ? keys.fleets.diff(fleetId, pair.from, pair.to) : ["none"],
    queryFn: () => apiFetch<{ diff: BundleDiff }>(`/fleets/${fleetId}/diff${qs(pair!)}`),
    enabled: Boolean(pair),
  });
  const items = list.data?.items ?? [];
  return (
    <Card title="Published revisions">
      <ErrorBanner error={list.error} />
      {items.length === 0 ? (
        <p className="text-sm text-slate-600">Nothing published yet. Publish the draft above; each publish is a new signed, immutable revision you can diff and roll back to.</p>
      ) : (
        <>
          <Table head={["Revision", "Content", "Note", "By", "When", ""]}>
            {items.map((r) => (
              <tr key={r.id} data-testid={`revision-${r.revision}`}>
                <Td>
                  <span className="font-medium">{r.revision}</span> {list.data?.activeRevision === r.revision ? <Badge color="green">live</Badge> : null}
                </Td>
                <Td>
                  <code className="text-xs" title={`sha256 ${r.sha256}, signed by ${r.keyId}`}>
                    {r.sha256.slice(0, 12)}
                  </code>
                </Td>
                <Td>{r.rolledBackFrom ? <Badge color="amber">rollback to {r.rolledBackFrom}</Badge> : r.note}</Td>
                <Td>{r.createdBy}</Td>
                <Td>
                  <Time iso={r.createdAt} />
                </Td>
                <Td className="space-x-2 whitespace-nowrap">
                  {r.parentRevision ? (
                    <Button variant="ghost" onClick={() => setPair({ from: r.parentRevision!, to: r.revision })}>
                      Diff with {r.parentRevision}
                    </Button>
                  ) : null}
                  {canRollback && list.data?.activeRevision !== r.revision ? (
                    <ConfirmButton
                      label="Roll back"
                      title={`Roll back to revision ${r.revision}?`}
                      body={
                        <div className="space-y-2" data-testid="rollback-explainer">
                          <p>
                            <strong>Restores</strong> revision {r.revision}&apos;s policies, scope mappings and approved tool catalogue, as a new revision signed now.
                          </p>
                          <p>
                            <strong>Keeps as they are now</strong>: the servers (upstream URL, resource URI, trusted issuers; a tenant unshared since stays out) and the live state read fresh now:
                            token revocations, client approvals, upstream credential versions, masking rules and decided call approvals (an approval already used stays used). A rollback never brings a
                            revoked token back.
                          </p>
                          <p>Agents pick it up at once. Nothing is deleted: you can roll forward the same way.</p>
                        </div>
                      }
                      confirmLabel={`Roll back to ${r.revision}`}
                      onConfirm={() =>
                        apiFetch(`/fleets/${fleetId}/bundles/${r.revision}/rollback`, { method: "POST" }).then(() => {
                          void qc.invalidateQueries({ queryKey: ["fleets"] });
                        })
                      }
                    />
                  ) : null}
                </Td>
              </tr>
            ))}
          </Table>
          {items.length > 1 ? (
            <form
              className="mt-3 flex items-end gap-2 text-sm"
              onSubmit={(e) => {
                e.preventDefault();
                const d = new FormData(e.currentTarget);
                setPair({ from: Number(d.get("from")), to: Number(d.get("to")) });
              }}
            >
              <label className="flex flex-col">
                From
                <select name="from" defaultValue={items[items.length - 1]!.revision} className="rounded-md border-0 py-1 ring-1 ring-slate-300">
                  {items.map((r) => (
                    <option key={r.revision}>{r.revision}</option>
                  ))}
                </select>
              </label>
              <label className="flex flex-col">
                To
                <select name="to" defaultValue={items[0]!.revision} className="rounded-md border-0 py-1 ring-1 ring-slate-300">
                  {items.map((r) => (
                    <option key={r.revision}>{r.revision}</option>
                  ))}
                </select>
              </label>
              <Button type="submit" variant="secondary">
                Compare
              </Button>
            </form>
          ) : null}
          {pair ? (
            <div className="mt-4">
              <h3 className="mb-2 text-sm font-semibold text-slate-900">
                Revision {pair.from} → {pair.to}
              </h3>
              <ErrorBanner error={diff.error} />
              {diff.data ? <DiffView diff={diff.data.diff} /> : null}
            </div>
          ) : null}
        </>
      )}
    </Card>
  );
}

function Agents({ fleet, canManage }: { fleet: Fleet; canManage: boolean }) {
  const qc = useQueryClient();
  const [token, setToken] = useState<string | null>(null);
  const [key, setKey] = useState<string | null>(null);
  const mint = useMutation({
    mutationFn: () => apiFetch<{ token: string }>(`/fleets/${fleet.id}/enrollment-tokens`, { method: "POST", body: { ttlMinutes: 60 } }),
    onSuccess: (r) => setToken(r.token),
  });
  const refresh = () => qc.invalidateQueries({ queryKey: keys.fleets.byId(fleet.id) });
  return (
    <Card
      title="Agents"
      actions={
        canManage ? (
          <Button onClick={() => mint.mutate()} busy={mint.isPending}>
            Enrollment token
          </Button>
        ) : null
      }
    >
      <ErrorBanner error={mint.error} />
      {fleet.agents.length === 0 ? (
        <p className="text-sm text-slate-600">No agent has enrolled. Create a one-time enrollment token and start an agent with it; it exchanges the token for its own key.</p>
      ) : (
        <Table head={["Agent", "Version", "Revision", "Last seen", "Errors", ""]}>
          {fleet.agents.map((a) => (
            <tr key={a.id}>
              <Td>
                <div className="font-medium">{a.name}</div>
                <code className="text-xs text-slate-500">{a.id}</code>
              </Td>
              <Td>{a.version ?? "—"}</Td>
              <Td>
                {a.bundleRevision === null ? (
                  "—"
                ) : a.bundleRevision === fleet.activeRevision ? (
                  <Badge color="green">{a.bundleRevision}</Badge>
                ) : (
                  <Badge color="amber">{a.bundleRevision} (behind)</Badge>
                )}
              </Td>
              <Td>
                <Time iso={a.lastSeenAt} />
              </Td>
              <Td className="max-w-xs truncate text-rose-700">{a.lastError ?? ""}</Td>
              <Td className="space-x-2 whitespace-nowrap">
                {a.revokedAt ? (
                  <Badge color="red">revoked</Badge>
                ) : canManage ? (
                  <>
                    <ConfirmButton
                      variant="primary"
                      label="Rotate key"
                      title={`Rotate the key of ${a.name}?`}
                      body="A new key is shown once; the old key stops working at once. Configure the agent with the new key."
                      confirmLabel="Rotate key"
                      onConfirm={() => apiFetch<{ agentKey: string }>(`/agents/${a.id}/rotate-key`, { method: "POST" }).then((r) => setKey(r.agentKey))}
                    />
                    <ConfirmButton
                      label="Revoke"
                      title={`Revoke ${a.name}?`}
                      body="Its key stops working at once; it can no longer fetch bundles."
                      confirmLabel="Revoke agent"
                      onConfirm={() => apiFetch(`/agents/${a.id}`, { method: "DELETE" }).then(refresh)}
                    />
                  </>
                ) : null}
              </Td>
            </tr>
          ))}
        </Table>
      )}
      <Modal open={Boolean(token)} onClose={() => setToken(null)} title="Enrollment token">
        {token ? <CopyOnce label="Start an agent with this one-time token (valid for 60 minutes)." value={token} /> : null}
      </Modal>
      <Modal open={Boolean(key)} onClose={() => (setKey(null), void refresh())} title="New agent key">
        {key ? <CopyOnce label="The agent's new key." value={key} /> : null}
      </Modal>
    </Card>
  );
}
