"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import Link from "next/link";
import { useParams } from "next/navigation";
import { Badge, Button, Card, ConfirmButton, EmptyState, ErrorBanner, SelectField, Table, Td, Time } from "@/components/ui";
import { useCanWrite } from "@/components/shell/context";
import { HintBadges, RemovedUpstreamBadge, RiskBadge, ToolStatusBadge, riskLevels, type Risk } from "@/components/servers/badges";
import { BlockToolButton } from "@/components/servers/block-tool";
import { useServer } from "@/components/servers/server-context";
import { DefinitionView, DiffView, downloadVersion, type ToolDetail, type ToolVersion, type ToolVersionSummary } from "@/components/servers/tool-definition";
import { ApiError, apiFetch, keys } from "@/lib/client/api";

export default function ToolDetailPage() {
  const server = useServer();
  const { toolId } = useParams<{ toolId: string }>();
  const canWrite = useCanWrite(server.tenantId);
  const qc = useQueryClient();
  const toolsHref = `/servers/${encodeURIComponent(server.id)}/tools`;
  const path = `/tools/${encodeURIComponent(toolId)}`;

  const tool = useQuery({ queryKey: keys.tools.byId(toolId), queryFn: () => apiFetch<ToolDetail>(path) });
  // The tool answer carries the latest page of the history; older pages are fetched on request.
  const [older, setOlder] = useState<ToolVersionSummary[]>([]);
  const loadOlder = useMutation({
    mutationFn: (page: number) => apiFetch<{ items: ToolVersionSummary[]; total: number }>(`${path}/versions?page=${page}&pageSize=20`),
    onSuccess: (p) => setOlder((o) => [...o, ...p.items]),
  });
  const download = useMutation({
    mutationFn: (versionId: string) => apiFetch<ToolVersion>(`${path}/versions/${encodeURIComponent(versionId)}`),
    onSuccess: (v) => downloadVersion(tool.data?.name ?? "tool", v),
  });

  // Every tool change moves statuses/counts in lists, the pending badge and the scope matrix.
  const refreshAround = () => Promise.all([qc.invalidateQueries({ queryKey: keys.tools.all }), qc.invalidateQueries({ queryKey: keys.servers.all })]);
  const onChanged = (t: ToolDetail) => {
    qc.setQueryData(keys.tools.byId(toolId), t);
    return refreshAround();
  };
  const approve = useMutation({
    mutationFn: (versionId: string) => apiFetch<ToolDetail>(`${path}/approve`, { method: "POST", body: { versionId } }),
    onSuccess: onChanged,
    // A 409 means the tool changed since it was shown: show the new latest version.
    onError: refreshAround,
  });
  const block = useMutation({ mutationFn: (reason: string) => apiFetch<ToolDetail>(`${path}/block`, { method: "POST", body: { reason } }), onSuccess: onChanged });
  const unblock = useMutation({ mutationFn: () => apiFetch<ToolDetail>(`${path}/block`, { method: "DELETE" }), onSuccess: onChanged });
  const setRisk = useMutation({ mutationFn: (risk: Risk) => apiFetch<ToolDetail>(path, { method: "PATCH", body: { risk } }), onSuccess: onChanged });

  const back = (
    <Link href={toolsHref} className="text-sm text-indigo-700 hover:underline">
      ← All tools
    </Link>
  );

  if (tool.isPending) {
    return (
      <div className="space-y-3">
        {back}
        <p role="status" className="text-sm text-slate-500">
          Loading tool…
        </p>
      </div>
    );
  }
  if (tool.isError) {
    return (
      <div className="space-y-3">
        {back}
        {tool.error instanceof ApiError && tool.error.status === 404 ? (
          <EmptyState title="Tool not found" action={back}>
            It may have been removed with its server, or it belongs to a server you cannot see.
          </EmptyState>
        ) : (
          <ErrorBanner error={tool.error} />
        )}
      </div>
    );
  }

  const t = tool.data;
  if (t.serverId !== server.id) {
    return (
      <div className="space-y-3">
        {back}
        <EmptyState
          title="This tool belongs to another server"
          action={
            <Link href={`/servers/${encodeURIComponent(t.serverId)}/tools/${encodeURIComponent(t.id)}`} className="text-sm font-medium text-indigo-700 hover:underline">
              Open it on its server
            </Link>
          }
        />
      </div>
    );
  }

  const latest = t.latestVersion;
  const approved = t.approvedVersion;
  const pending = !approved || approved.id !== latest.id;

  return (
    <div className="space-y-5">
      {back}

      <div className="flex flex-wrap items-start justify-between gap-4">
        <div className="min-w-0 space-y-1.5">
          <h2 className="font-mono text-lg font-semibold text-slate-900">{t.name}</h2>
          <div className="flex flex-wrap items-center gap-1.5">
            <ToolStatusBadge status={t.status} />
            <RiskBadge risk={t.risk} />
            {t.removedUpstream ? <RemovedUpstreamBadge /> : null}
            <HintBadges annotations={t.annotations} />
          </div>
          {t.title ? <p className="text-sm font-medium text-slate-800">{t.title}</p> : null}
          {t.description ? <p className="max-w-3xl text-sm whitespace-pre-wrap text-slate-600">{t.description}</p> : null}
        </div>

        <div className="flex flex-wrap items-end gap-2">
          <div className="w-40">
            <SelectField
              label="Risk"
              value={t.risk}
              disabled={!canWrite || setRisk.isPending}
              onChange={(e) => setRisk.mutate(e.target.value as Risk)}
              hint={setRisk.isPending ? "Saving…" : undefined}
            >
              {riskLevels.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </SelectField>
          </div>
          {canWrite ? (
            <>
              {pending ? (
                <ConfirmButton
                  variant="primary"
                  label={`Approve version ${latest.version}`}
                  title={`Approve version ${latest.version} of ${t.name}?`}
                  confirmLabel={`Approve version ${latest.version}`}
                  body={
                    <div className="space-y-2">
                      <p>
                        Version {latest.version} becomes the catalogue definition of <span className="font-mono">{t.name}</span>: agents will list exactly this title, description, input schema and
                        annotations, and allow calls wherever a scope grants the tool.
                      </p>
                      {approved ? (
                        <p>The currently approved version {approved.version} is superseded and no longer served.</p>
                      ) : (
                        <p>Until now the tool was not exposed at all; it becomes callable for tokens whose scopes grant it.</p>
                      )}
                      {t.blocked ? <p className="font-medium">The tool stays blocked until you unblock it.</p> : null}
                    </div>
                  }
                  onConfirm={() => approve.mutateAsync(latest.id)}
                />
              ) : null}
              {t.blocked ? (
                <ConfirmButton
                  variant="primary"
                  label="Unblock"
                  title={`Unblock ${t.name}?`}
                  confirmLabel="Unblock tool"
                  body={
                    <p>
                      <span className="font-mono">{t.name}</span> becomes callable again wherever the scope mapping grants it
                      {approved ? ` (approved version ${approved.version})` : " once a version is approved"}.
                    </p>
                  }
                  onConfirm={() => unblock.mutateAsync()}
                />
              ) : (
                <BlockToolButton toolName={t.name} onBlock={(reason) => block.mutateAsync(reason)} />
              )}
            </>
          ) : null}
        </div>
      </div>
      <ErrorBanner error={setRisk.error} />

      {t.blocked ? (
        <div role="note" className="rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-900 ring-1 ring-inset ring-rose-200">
          <span className="font-semibold">Blocked.</span> Never callable, whatever the scope mapping grants.
          {t.blockedReason ? (
            <>
              {" "}
              Reason: <span className="italic">{t.blockedReason}</span>
            </>
          ) : null}
        </div>
      ) : null}
      {t.removedUpstream ? (
        <div role="note" className="rounded-md bg-slate-100 px-3 py-2 text-sm text-slate-700">
          The upstream server no longer listed this tool at the last import. It stays in the catalogue (and mapped scopes keep it) until it returns or you block it.
        </div>
      ) : null}
      {pending ? (
        <div role="note" className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
          {approved
            ? `Version ${latest.version} differs from the approved version ${approved.version}. Agents keep serving version ${approved.version} until you approve the change.`
            : `Version ${latest.version} is new and pending review. Agents do not expose this tool until it is approved.`}
          {!canWrite ? " Only an admin of the owning tenant can approve it." : ""}
        </div>
      ) : null}

      {t.diff && approved ? (
        <Card title={`Changes: approved version ${approved.version} → latest version ${latest.version}`}>
          <DiffView lines={t.diff} truncated={t.diffTruncated} toolName={t.name} versions={[approved, latest]} />
          <details className="mt-4">
            <summary className="cursor-pointer text-sm font-medium text-indigo-700">Show both full definitions</summary>
            <div className="mt-3 grid gap-4 lg:grid-cols-2">
              <div>
                <h3 className="mb-2 text-sm font-semibold text-slate-900">Approved (version {approved.version})</h3>
                <DefinitionView version={approved} />
              </div>
              <div>
                <h3 className="mb-2 text-sm font-semibold text-slate-900">Latest (version {latest.version})</h3>
                <DefinitionView version={latest} />
              </div>
            </div>
          </details>
        </Card>
      ) : (
        <Card title={approved ? `Approved definition (version ${approved.version})` : `Latest definition (version ${latest.version}), pending review`}>
          <DefinitionView version={approved ?? latest} />
        </Card>
      )}

      <section aria-labelledby="history-heading" className="space-y-2">
        <h3 id="history-heading" className="text-sm font-semibold text-slate-900">
          Version history
        </h3>
        <ErrorBanner error={loadOlder.error ?? download.error} />
        <Table head={["Version", "Source", "Seen", "Approved", "Hash", "Size", ""]}>
          {[...t.history, ...older.filter((o) => !t.history.some((h) => h.id === o.id))].map((v) => (
            <tr key={v.id}>
              <Td>
                <span className="flex flex-wrap items-center gap-1">
                  <span className="font-medium">v{v.version}</span>
                  {v.id === latest.id ? <Badge color="blue">latest</Badge> : null}
                  {approved && v.id === approved.id ? <Badge color="green">in catalogue</Badge> : null}
                </span>
              </Td>
              <Td>{v.source === "import" ? "imported" : "added by hand"}</Td>
              <Td className="whitespace-nowrap text-xs">
                <Time iso={v.createdAt} />
              </Td>
              <Td className="text-xs">
                {v.approvedAt ? (
                  <>
                    <Time iso={v.approvedAt} />
                    {v.approvedBy ? <span className="block text-slate-500">by {v.approvedBy}</span> : null}
                  </>
                ) : (
                  <span className="text-slate-400">not approved</span>
                )}
              </Td>
              <Td>
                <code className="font-mono text-xs text-slate-500" title={v.hash}>
                  {v.hash.replace(/^sha256:/, "").slice(0, 12)}
                </code>
              </Td>
              <Td className="whitespace-nowrap text-xs">{v.size.toLocaleString()} bytes</Td>
              <Td>
                <Button type="button" variant="secondary" busy={download.isPending && download.variables === v.id} onClick={() => download.mutate(v.id)}>
                  Download
                </Button>
              </Td>
            </tr>
          ))}
        </Table>
        {t.historyTotal > t.history.length + older.length ? (
          <div className="flex items-center gap-3 text-sm text-slate-600">
            <span>
              Showing the latest {(t.history.length + older.length).toLocaleString()} of {t.historyTotal.toLocaleString()} versions.
            </span>
            <Button type="button" variant="secondary" busy={loadOlder.isPending} onClick={() => loadOlder.mutate(Math.floor((t.history.length + older.length) / 20) + 1)}>
              Show older versions
            </Button>
          </div>
        ) : null}
      </section>
    </div>
  );
}
