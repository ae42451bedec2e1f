"use client";

import { keepPreviousData, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { Suspense, useCallback, useState } from "react";
import { Button, EmptyState, ErrorBanner, Pager, SearchBox, SelectField, Table, Td, Time } from "@/components/ui";
import { useCanWrite } from "@/components/shell/context";
import { AddToolModal } from "@/components/servers/add-tool-modal";
import { HintBadges, RemovedUpstreamBadge, RiskBadge, ToolStatusBadge, statusLabel, toolStatuses, type ToolStatus } from "@/components/servers/badges";
import { ImportResult, useImportCatalog } from "@/components/servers/import-catalog";
import { useServer } from "@/components/servers/server-context";
import { apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicTool } from "@/lib/client/types";

const PAGE_SIZE = 25;

/** The catalogue's kinds (the API's `kind`), and how this page names each. */
const KINDS = [
  { value: "tool", label: "Tools", one: "tool", key: "Name" },
  { value: "resource", label: "Resources", one: "resource", key: "URI" },
  { value: "resourceTemplate", label: "Resource templates", one: "resource template", key: "URI template" },
  { value: "prompt", label: "Prompts", one: "prompt", key: "Name" },
] as const;
type Kind = (typeof KINDS)[number]["value"];

function ToolsView() {
  const server = useServer();
  const canWrite = useCanWrite(server.tenantId);
  const router = useRouter();
  const pathname = usePathname();
  const params = useSearchParams();
  const [adding, setAdding] = useState(false);
  // Bumped to reset the search box's own text when the filters are cleared.
  const [searchKey, setSearchKey] = useState(0);
  const importer = useImportCatalog(server.id);

  // Filters live in the URL so a filtered view can be shared and survives Back.
  const q = params.get("q") ?? "";
  const rawStatus = params.get("status");
  const status = toolStatuses.includes(rawStatus as ToolStatus) ? (rawStatus as ToolStatus) : undefined;
  const page = Math.max(1, Number(params.get("page")) || 1);
  const rawKind = params.get("kind");
  const kind: Kind = KINDS.some((k) => k.value === rawKind) ? (rawKind as Kind) : "tool";
  const kindInfo = KINDS.find((k) => k.value === kind) ?? KINDS[0];
  const setFilters = useCallback(
    (next: { q?: string; status?: string; page?: number; kind?: Kind }) => {
      const merged = { q, status, page, kind, ...next };
      router.replace(
        `${pathname}${qs({ kind: merged.kind === "tool" ? undefined : merged.kind, q: merged.q, status: merged.status, page: merged.page && merged.page > 1 ? merged.page : undefined })}`,
        { scroll: false },
      );
    },
    [router, pathname, q, status, page, kind],
  );
  const onSearch = useCallback((v: string) => setFilters({ q: v, page: 1 }), [setFilters]);

  const query = { kind: kind === "tool" ? undefined : kind, q: q || undefined, status, page, pageSize: PAGE_SIZE };
  const tools = useQuery({
    queryKey: keys.tools.list(server.id, query),
    queryFn: () => apiFetch<Page<PublicTool>>(`/servers/${encodeURIComponent(server.id)}/tools${qs(query)}`),
    placeholderData: keepPreviousData,
  });

  const filtered = Boolean(q || status);
  const base = `/servers/${encodeURIComponent(server.id)}`;

  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div className="flex flex-wrap items-end gap-3">
          <div className="w-52">
            <SelectField label="Show" value={kind} onChange={(e) => setFilters({ kind: e.target.value as Kind, page: 1 })}>
              {KINDS.map((k) => (
                <option key={k.value} value={k.value}>
                  {k.label}
                </option>
              ))}
            </SelectField>
          </div>
          <div className="w-72">
            <span className="mb-1 block text-sm font-medium text-slate-700" aria-hidden>
              Search
            </span>
            <SearchBox key={searchKey} value={q} onChange={onSearch} placeholder={`Search ${kindInfo.label.toLowerCase()} by ${kindInfo.key.toLowerCase()}`} />
          </div>
          <div className="w-56">
            <SelectField label="Status" value={status ?? ""} onChange={(e) => setFilters({ status: e.target.value || undefined, page: 1 })}>
              <option value="">All statuses</option>
              {toolStatuses.map((s) => (
                <option key={s} value={s}>
                  {statusLabel[s]}
                </option>
              ))}
            </SelectField>
          </div>
        </div>
        {canWrite ? (
          <div className="flex gap-2">
            {kind === "tool" ? (
              <Button variant="secondary" onClick={() => setAdding(true)}>
                Add tool
              </Button>
            ) : null}
            <Button busy={importer.isPending} onClick={() => importer.mutate()}>
              Import from upstream
            </Button>
          </div>
        ) : null}
      </div>

      {importer.isPending ? (
        <p role="status" className="text-sm text-slate-600">
          Listing tools, resources and prompts from <code className="font-mono text-xs">{server.upstreamUrl}</code>…
        </p>
      ) : (
        <ImportResult result={importer.data} error={importer.error} onDismiss={() => importer.reset()} />
      )}
      {!importer.error && server.lastImportError ? <p className="text-sm text-rose-700">The last import failed: {server.lastImportError}</p> : null}

      <ErrorBanner error={tools.error} />

      {tools.isPending ? (
        <p role="status" className="text-sm text-slate-500">
          Loading {kindInfo.label.toLowerCase()}…
        </p>
      ) : tools.data && tools.data.total === 0 && !filtered && kind !== "tool" ? (
        <EmptyState title={`No ${kindInfo.label.toLowerCase()} in the catalogue`}>
          Import from upstream lists them when the upstream server offers them. Imported {kindInfo.label.toLowerCase()} stay pending until an admin approves them; agents refuse anything not approved.
        </EmptyState>
      ) : tools.data && tools.data.total === 0 && !filtered ? (
        <EmptyState
          title="No tools in the catalogue yet"
          action={
            canWrite ? (
              <div className="flex justify-center gap-2">
                <Button busy={importer.isPending} onClick={() => importer.mutate()}>
                  Import from upstream
                </Button>
                <Button variant="secondary" onClick={() => setAdding(true)}>
                  Add tool by hand
                </Button>
              </div>
            ) : null
          }
        >
          Import the catalogue from the upstream server&apos;s tools/list. Imported tools stay pending until an admin reviews and approves them; agents only expose approved tools.
          {canWrite ? "" : " An admin of the owning tenant can import it."}
        </EmptyState>
      ) : tools.data ? (
        <>
          {tools.data.items.length === 0 ? (
            <EmptyState
              title="No tools match"
              action={
                <Button
                  variant="secondary"
                  onClick={() => {
                    setSearchKey((k) => k + 1);
                    router.replace(pathname);
                  }}
                >
                  Clear filters
                </Button>
              }
            >
              Nothing in this catalogue matches {q ? <>&ldquo;{q}&rdquo;</> : null}
              {q && status ? " with " : ""}
              {status ? <>status &ldquo;{statusLabel[status]}&rdquo;</> : null}.
            </EmptyState>
          ) : (
            <div className={tools.isPlaceholderData ? "opacity-60 transition-opacity" : undefined} aria-busy={tools.isFetching}>
              <Table head={[kindInfo.key, "Title", "Status", "Risk", kind === "tool" ? "Hints" : "", "Updated"]}>
                {tools.data.items.map((t) => (
                  <tr key={t.id} data-testid={`tool-row-${t.name}`} className="hover:bg-slate-50">
                    <Td>
                      <Link href={`${base}/tools/${encodeURIComponent(t.id)}`} className="font-mono text-sm font-medium text-indigo-700 hover:underline">
                        {t.name}
                      </Link>
                    </Td>
                    <Td className="max-w-xs">
                      <span className="block truncate" title={t.description || undefined}>
                        {t.title ?? <span className="text-slate-400">—</span>}
                      </span>
                    </Td>
                    <Td>
                      <span className="flex flex-wrap items-center gap-1">
                        <ToolStatusBadge status={t.status} />
                        {t.removedUpstream ? <RemovedUpstreamBadge /> : null}
                      </span>
                    </Td>
                    <Td>
                      <RiskBadge risk={t.risk} />
                    </Td>
                    <Td>{kind === "tool" ? <HintBadges annotations={t.annotations} /> : null}</Td>
                    <Td className="whitespace-nowrap text-xs text-slate-500">
                      <Time iso={t.updatedAt} />
                    </Td>
                  </tr>
                ))}
              </Table>
            </div>
          )}
          <Pager page={page} pageSize={PAGE_SIZE} total={tools.data.total} onPage={(p) => setFilters({ page: p })} />
        </>
      ) : null}

      {canWrite ? <AddToolModal serverId={server.id} open={adding} onClose={() => setAdding(false)} /> : null}
    </div>
  );
}

export default function ToolsPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading tools…</p>}>
      <ToolsView />
    </Suspense>
  );
}
