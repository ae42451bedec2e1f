"use client";

import { useQuery } from "@tanstack/react-query";
import { Card, ErrorBanner } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";
import { apiParams, auditKeys, isoToLocal, type AuditFilter } from "./filters";

/** A bar's width: clicking it narrows the log to that bucket. */
const BUCKET_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

interface Charts {
  bucket: "minute" | "hour" | "day";
  from: string;
  to: string;
  series: { t: string; allow: number; deny: number; error: number }[];
  totals: { allow: number; deny: number; error: number };
  topDeniedTools: { serverId: string; tool: string; count: number }[];
  topUsers: { user: string; count: number; denied: number }[];
  topClients: { client: string; count: number; denied: number }[];
}

const COLORS = { allow: "#10b981", deny: "#f43f5e", error: "#f59e0b" } as const;
const OUTCOMES = ["allow", "deny", "error"] as const;

function label(t: string, bucket: Charts["bucket"]) {
  const d = new Date(t);
  return bucket === "day" ? d.toLocaleDateString() : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

/** Stacked bars of decisions per bucket (plain SVG: no chart library). */
function OutcomeBars({ c, onBucket }: { c: Charts; onBucket?: (t: string) => void }) {
  const W = 720;
  const H = 140;
  const max = Math.max(1, ...c.series.map((p) => p.allow + p.deny + p.error));
  const n = Math.max(c.series.length, 1);
  const bw = Math.max(2, Math.min(24, W / n - 2));
  if (c.series.length === 0) return <p className="text-sm text-slate-500">No decisions in this range.</p>;
  return (
    <svg viewBox={`0 0 ${W} ${H + 18}`} className="h-40 w-full" role="img" aria-label={`Decisions per ${c.bucket} by outcome`}>
      {c.series.map((p, i) => {
        const x = (i * W) / n;
        let y = H;
        return (
          <g
            key={p.t}
            data-testid="chart-bar"
            role={onBucket ? "button" : undefined}
            tabIndex={onBucket ? 0 : undefined}
            aria-label={onBucket ? `Show the decisions of ${label(p.t, c.bucket)}` : undefined}
            className={onBucket ? "cursor-pointer outline-none hover:opacity-80 focus-visible:opacity-70" : undefined}
            onClick={onBucket ? () => onBucket(p.t) : undefined}
            onKeyDown={onBucket ? (e) => (e.key === "Enter" || e.key === " ") && onBucket(p.t) : undefined}
          >
            <title>{`${label(p.t, c.bucket)}: ${p.allow} allowed, ${p.deny} denied, ${p.error} errors${onBucket ? " (click to show them)" : ""}`}</title>
            <rect x={x} y={0} width={bw} height={H} fill="transparent" />
            {OUTCOMES.map((o) => {
              const h = (p[o] / max) * H;
              y -= h;
              return h > 0 ? <rect key={o} x={x} y={y} width={bw} height={h} fill={COLORS[o]} /> : null;
            })}
          </g>
        );
      })}
      <text x={0} y={H + 14} fontSize={10} fill="#64748b">
        {label(c.series[0]!.t, c.bucket)}
      </text>
      <text x={W} y={H + 14} fontSize={10} fill="#64748b" textAnchor="end">
        {label(c.series[c.series.length - 1]!.t, c.bucket)}
      </text>
      <text x={W} y={10} fontSize={10} fill="#64748b" textAnchor="end">
        max {max.toLocaleString()} per {c.bucket}
      </text>
    </svg>
  );
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
        <div className="grid gap-4 lg:grid-cols-[2fr_1fr_1fr_1fr]">
          <OutcomeBars c={c} onBucket={(t) => onFilter({ range: "custom", from: isoToLocal(Date.parse(t)), to: isoToLocal(Date.parse(t) + BUCKET_MS[c.bucket]) })} />
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
      )}
    </Card>
  );
}
