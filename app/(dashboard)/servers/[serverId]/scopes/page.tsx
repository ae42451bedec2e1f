"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useEffect, useState } from "react";
import { Badge, Button, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { useCanWrite } from "@/components/shell/context";
import { ScopeMatrix, granted, type Mapping, type ScopeMappingData } from "@/components/servers/scope-matrix";
import { useServer } from "@/components/servers/server-context";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { listScopeMappingVersions } from "@/lib/scopes/service";

type MappingVersion = Awaited<ReturnType<typeof listScopeMappingVersions>>[number];

/** Only supported scopes and known tools, without empty entries. */
function clean(m: Mapping, scopes: string[], tools: string[]): Mapping {
  const known = new Set(tools);
  const out: Mapping = {};
  for (const s of scopes) {
    const names = (m[s] ?? []).filter((n) => known.has(n));
    if (names.length) out[s] = [...new Set(names)].sort();
  }
  return out;
}

const grantCount = (m: Mapping) => Object.values(m).reduce((n, a) => n + a.length, 0);

export default function ScopesPage() {
  const server = useServer();
  const canWrite = useCanWrite(server.tenantId);
  const qc = useQueryClient();
  const sid = encodeURIComponent(server.id);
  const base = `/servers/${sid}`;
  const versionsKey = [...keys.servers.scopes(server.id), "versions"] as const;

  const current = useQuery({ queryKey: keys.servers.scopes(server.id), queryFn: () => apiFetch<ScopeMappingData>(`/servers/${sid}/scopes`) });
  const versions = useQuery({ queryKey: versionsKey, queryFn: () => apiFetch<{ items: MappingVersion[] }>(`/servers/${sid}/scopes/versions`) });

  // Local edits, with the version they started from (sent as baseVersion).
  const [edit, setEdit] = useState<{ base: number; mapping: Mapping } | null>(null);
  const [savedVersion, setSavedVersion] = useState<number | null>(null);

  const save = useMutation({
    mutationFn: (body: { baseVersion: number; mapping: Mapping }) => apiFetch<{ version: number; mapping: Mapping }>(`/servers/${sid}/scopes`, { method: "PUT", body }),
    onSuccess: async (res) => {
      setSavedVersion(res.version);
      setEdit(null);
      await qc.invalidateQueries({ queryKey: keys.servers.scopes(server.id) });
    },
  });

  const data = current.data;
  const scopes = data?.scopes ?? [];
  const toolNames = data?.tools.map((t) => t.name) ?? [];
  const saved = data ? clean(data.mapping, scopes, toolNames) : {};
  const shown = edit?.mapping ?? saved;
  const changes = edit ? scopes.reduce((n, s) => n + toolNames.filter((t) => granted(shown, s, t) !== granted(saved, s, t)).length, 0) : 0;
  const dirty = changes > 0;
  const staleScopes = data ? Object.keys(data.mapping).filter((s) => !scopes.includes(s) && data.mapping[s]?.length) : [];
  const conflict = save.error instanceof ApiError && save.error.status === 409;
  const movedOn = Boolean(edit && data && data.version !== edit.base);

  // Warn before leaving the page with unsaved grants.
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  const toggle = (scope: string, tool: string, on: boolean) => {
    if (!data) return;
    setSavedVersion(null);
    setEdit((e) => {
      const start = e ?? { base: data.version, mapping: saved };
      const names = new Set(start.mapping[scope] ?? []);
      if (on) names.add(tool);
      else names.delete(tool);
      return { base: start.base, mapping: { ...start.mapping, [scope]: [...names].sort() } };
    });
  };

  const reload = async () => {
    setEdit(null);
    save.reset();
    await qc.invalidateQueries({ queryKey: keys.servers.scopes(server.id) });
  };

  if (current.isPending) {
    return (
      <p role="status" className="text-sm text-slate-500">
        Loading scope mapping…
      </p>
    );
  }
  if (current.isError || !data) return <ErrorBanner error={current.error} />;

  return (
    <div className="space-y-6">
      <div className="flex flex-wrap items-start justify-between gap-4">
        <div className="max-w-3xl text-sm text-slate-600">
          <p>A token may call a tool only if one of its scopes grants it here, the tool is approved and not blocked. Every save is a new version.</p>
          <p className="mt-1 text-xs text-slate-500">
            {data.version === 0 ? (
              "Nothing saved yet."
            ) : (
              <>
                Current: version {data.version}
                {data.updatedBy ? ` by ${data.updatedBy}` : ""}, <Time iso={data.updatedAt} />
              </>
            )}
          </p>
        </div>
        {canWrite && scopes.length && data.tools.length ? (
          <div className="flex items-center gap-2">
            {dirty ? (
              <span className="text-sm text-amber-700" role="status">
                {changes} unsaved change{changes === 1 ? "" : "s"}
              </span>
            ) : null}
            <Button
              variant="secondary"
              disabled={!edit || save.isPending}
              onClick={() => {
                setEdit(null);
                save.reset();
              }}
            >
              Discard
            </Button>
            <Button busy={save.isPending} disabled={!dirty || conflict} onClick={() => edit && save.mutate({ baseVersion: edit.base, mapping: clean(edit.mapping, scopes, toolNames) })}>
              Save mapping
            </Button>
          </div>
        ) : null}
      </div>

      {!canWrite ? (
        <p className="rounded-md bg-slate-100 px-3 py-2 text-sm text-slate-700" role="note">
          Read-only: only admins of the owning tenant can change the mapping.
        </p>
      ) : null}
      {savedVersion !== null && !edit ? (
        <p role="status" className="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-800 ring-1 ring-inset ring-emerald-200">
          Version {savedVersion} saved. Agents apply it on their next sync.
        </p>
      ) : null}
      {conflict ? (
        <div role="alert" className="flex flex-wrap items-center justify-between gap-3 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
          <span>
            <span className="font-semibold">Not saved: someone else saved the mapping meanwhile.</span> {save.error?.message} Reload shows their version and discards your unsaved edits.
          </span>
          <Button variant="secondary" onClick={reload}>
            Reload
          </Button>
        </div>
      ) : save.error ? (
        <ErrorBanner error={save.error} />
      ) : movedOn ? (
        <p role="status" className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
          Version {data.version} was saved by {data.updatedBy ?? "someone"} while you were editing; saving will be refused.{" "}
          <button type="button" className="font-medium underline" onClick={reload}>
            Reload
          </button>
        </p>
      ) : null}
      {staleScopes.length ? (
        <p role="note" className="rounded-md bg-slate-100 px-3 py-2 text-sm text-slate-700">
          The saved mapping still grants tools to {staleScopes.length === 1 ? "scope" : "scopes"} <span className="font-mono">{staleScopes.join(", ")}</span>, which the server no longer supports.
          Those grants no longer apply{canWrite ? " and are dropped on the next save" : ""}.
        </p>
      ) : null}

      {scopes.length === 0 ? (
        <EmptyState
          title="This server has no supported scopes"
          action={
            <Link href={base} className="text-sm font-medium text-indigo-700 hover:underline">
              Go to Overview
            </Link>
          }
        >
          Add the scopes tokens carry for this resource (for example files:read, files:write) on the Overview tab with Edit server. Each scope becomes a column here.
        </EmptyState>
      ) : data.tools.length === 0 ? (
        <EmptyState
          title="No tools to map yet"
          action={
            <Link href={`${base}/tools`} className="text-sm font-medium text-indigo-700 hover:underline">
              Go to Tools
            </Link>
          }
        >
          Import the catalogue from the upstream server on the Tools tab (or add tools by hand). Each tool becomes a row here.
        </EmptyState>
      ) : (
        <ScopeMatrix scopes={scopes} tools={data.tools} mapping={shown} saved={saved} readOnly={!canWrite || conflict} onToggle={toggle} />
      )}

      <section aria-labelledby="versions-heading" className="space-y-2">
        <h2 id="versions-heading" className="text-sm font-semibold text-slate-900">
          Version history
        </h2>
        <ErrorBanner error={versions.error} />
        {versions.data && versions.data.items.length === 0 ? (
          <p className="text-sm text-slate-500">No version saved yet: no scope grants any tool.</p>
        ) : versions.data ? (
          <Table head={["Version", "Saved by", "When", "Grants"]}>
            {versions.data.items.map((v) => (
              <tr key={v.version}>
                <Td>
                  <span className="flex items-center gap-1.5">
                    <span className="font-medium">v{v.version}</span>
                    {v.version === data.version ? <Badge color="green">current</Badge> : null}
                  </span>
                </Td>
                <Td>{v.createdBy}</Td>
                <Td className="whitespace-nowrap text-xs">
                  <Time iso={v.createdAt} />
                </Td>
                <Td>
                  <details>
                    <summary className="cursor-pointer text-sm">
                      {grantCount(v.mapping)} grant{grantCount(v.mapping) === 1 ? "" : "s"} in {Object.keys(v.mapping).length} scope{Object.keys(v.mapping).length === 1 ? "" : "s"}
                    </summary>
                    <ul className="mt-1 space-y-0.5 text-xs">
                      {Object.entries(v.mapping).map(([s, names]) => (
                        <li key={s}>
                          <span className="font-mono font-medium">{s}</span>: <span className="font-mono text-slate-600">{names.join(", ")}</span>
                        </li>
                      ))}
                    </ul>
                  </details>
                </Td>
              </tr>
            ))}
          </Table>
        ) : (
          <p role="status" className="text-sm text-slate-500">
            Loading history…
          </p>
        )}
      </section>
    </div>
  );
}
