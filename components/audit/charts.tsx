"use client";

import { useQuery } from "@tanstack/react-query";
import { Button, Card, ErrorBanner } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";
import { apiParams, auditKeys, isoToLocal, RANGES, type AuditFilter, type RangeKey } from "./filters";
import { BUCKET_MS, OUTCOME_COLORS, OutcomeChart, type Bucket, type SeriesPoint } from "./outcome-chart";

interface Charts {
  bucket: Bucket;
  from: string;
  to: string;
  series: SeriesPoint[];
  totals: { allow: number; deny: number; error: number };
  topDeniedTools: { serverId: string; tool: string; count: number }[];
  topUsers: { user: string; count: number; denied: number }[];
  topClients: { client: string; count: number; denied: number }[];
}

const COLORS = OUTCOME_COLORS;
const OUTCOMES = ["allow", "deny", "error"] as const;

/** The smallest preset that holds a custom window ending before now: where "Reset zoom" goes back to. */
export function presetAround(fromMs: number, now = Date.now()): Exclude<RangeKey, "custom"> {
  const back = now - fromMs;
  for (const k of ["1h", "24h", "7d", "30d"] as const) if (back <= RANGES[k]) return k;
  return "30d";
}

function TopList({ title, rows, empty }: { title: string; rows: { key: string; label: string; count: number; sub?: string; onClick?: () => void }[]; empty: string }) {
  const max = Math.max(1, ...rows.map((r) => r.count));
  return (
    <div>
      <h3 className="mb-2 text-xs font-semibold uppercase tracking-wide text-slate-500">{title}</h3>
      {rows.length === 0 ? (
        <p className="text-xs text-slate-500">{empty}</p>
      ) : (
        <ol className="space-y-1">
          {rows.map((r) => (
            <li key={r.key} className="text-xs">
              <div className="flex justify-between gap-2">
                <button type="button" onClick={r.onClick} className="truncate text-left font-mono text-slate-800 hover:underline" title={r.label}>
                  {r.label}
                </button>
                <span className="shrink-0 text-slate-600">
                  {r.count.toLocaleString()}
                  {r.sub ? <span className="text-rose-600"> {r.sub}</span> : null}
                </span>
              </div>
              <div className="mt-0.5 h-1 rounded bg-slate-100">
                <div className="h-1 rounded bg-indigo-400" style={{ width: `${(r.count / max) * 100}%` }} />
              </div>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

/** Outcomes over time and the top denied tools, users and clients of the current filter. */
export function AuditCharts({ filter, serverNames, onFilter }: { filter: AuditFilter; serverNames: Map<string, string>; onFilter: (patch: Partial<AuditFilter>) => void }) {
  const q = useQuery({
    queryKey: auditKeys.charts(filter),
    queryFn: () => apiFetch<Charts>(`/decisions/charts${qs(apiParams(filter))}`),
  });
  // A custom window (a zoom, or a bar followed): zoom out to three times its width (never past now), or reset to the preset holding it.
  const zoomFrom = filter.range === "custom" && filter.from ? Date.parse(filter.from) : null;
  const zoomOut = () => {
    if (zoomFrom === null || Number.isNaN(zoomFrom)) return;
    const zoomTo = filter.to ? Date.parse(filter.to) : Date.now();
    const w = Math.max(60_000, zoomTo - zoomFrom);
    const to = Math.min(Date.now(), zoomTo + w);
    const from = Math.max(Date.now() - RANGES["30d"], to - 3 * w);
    onFilter({ range: "custom", from: isoToLocal(from), to: isoToLocal(to) });
  };
  if (q.error) return <ErrorBanner error={q.error} />;
  const c = q.data;
  return (
    <Card
      title="Overview"
      actions={
        c ? (
          <span className="flex gap-3 text-xs text-slate-600" data-testid="audit-totals">
            {OUTCOMES.map((o) => (
              <span key={o} className="inline-flex items-center gap-1">
                <span className="h-2 w-2 rounded-sm" style={{ background: COLORS[o] }} aria-hidden />
                {c.totals[o].toLocaleString()} {o === "allow" ? "allowed" : o === "deny" ? "denied" : "errors"}
              </span>
            ))}
          </span>
        ) : null
      }
      className="mb-4"
    >
      {!c ? (
        <p className="text-sm text-slate-500">Loading charts…</p>
      ) : (
        <div className="space-y-4">
          <div className="min-w-0">
            <OutcomeChart
              bucket={c.bucket}
              from={Date.parse(c.from)}
              to={Date.parse(c.to)}
              series={c.series}
              onBucket={(t) => onFilter({ range: "custom", from: isoToLocal(Date.parse(t)), to: isoToLocal(Date.parse(t) + BUCKET_MS[c.bucket]) })}
              onZoom={(from, to) => onFilter({ range: "custom", from: isoToLocal(Math.floor(from / 60_000) * 60_000), to: isoToLocal(Math.ceil(to / 60_000) * 60_000) })}
            />
            <div className="mt-1 flex flex-wrap items-center gap-2 text-xs text-slate-500">
              <span>Drag across the chart to zoom into a time range; click a bar for its decisions.</span>
              {filter.range === "custom" && zoomFrom !== null ? (
                <>
                  <Button variant="secondary" onClick={() => zoomOut()}>
                    Zoom out
                  </Button>
                  <Button variant="secondary" onClick={() => onFilter({ range: presetAround(zoomFrom), from: "", to: "" })}>
                    Reset zoom
                  </Button>
                </>
              ) : null}
            </div>
          </div>
          <div className="grid gap-4 md:grid-cols-3">
            <TopList
              title="Top denied tools"
              empty="Nothing denied."
              rows={c.topDeniedTools.map((r) => ({
                key: `${r.serverId}/${r.tool}`,
                label: `${serverNames.get(r.serverId) ?? r.serverId} / ${r.tool}`,
                count: r.count,
                onClick: () => onFilter({ server: r.serverId, tool: r.tool, outcome: "deny" }),
              }))}
            />
            <TopList
              title="Top users"
              empty="No user."
              rows={c.topUsers.map((r) => ({ key: r.user, label: r.user, count: r.count, sub: r.denied ? `(${r.denied} denied)` : undefined, onClick: () => onFilter({ user: r.user }) }))}
            />
            <TopList
              title="Top clients"
              empty="No client."
              rows={c.topClients.map((r) => ({ key: r.client, label: r.client, count: r.count, sub: r.denied ? `(${r.denied} denied)` : undefined, onClick: () => onFilter({ client: r.client }) }))}
            />
          </div>
        </div>
      )}
    </Card>
  );
}
