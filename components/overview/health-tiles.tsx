"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { Card, ErrorBanner } from "@/components/ui";
import { apiFetch, qs } from "@/lib/client/api";

/** GET /api/v1/admin/overview (lib/overview/health.ts). */
interface Health {
  decisions: {
    bucket: "minute" | "hour" | "day";
    from: string;
    to: string;
    series: { t: string; allow: number; deny: number; error: number }[];
    totals: { allow: number; deny: number; error: number };
  };
  agents: { total: number; online: number; behind: number; maxBehind: number; lastHeartbeatAt: string | null } | null;
  unpublishedFleets: number | null;
  toolsDrifted: number;
  vaultDue: number;
  clientsPending: number;
}

const ago = (iso: string | null) => {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : s < 86_400 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86_400)} d ago`;
};

/** A count that links to the page where it is fixed; amber when something needs attention. */
function HealthTile({ label, value, detail, href, warn, testId }: { label: string; value: number | string; detail: string; href: string; warn: boolean; testId: string }) {
  return (
    <Link href={href} data-testid={testId} className={`block rounded-lg bg-white p-4 shadow-sm ring-1 hover:ring-indigo-300 ${warn ? "ring-amber-300" : "ring-slate-200"}`}>
      <div className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</div>
      <div className={`mt-1 text-2xl font-semibold ${warn ? "text-amber-700" : "text-slate-900"}`}>{value}</div>
      <div className="mt-1 text-xs text-slate-600">{detail}</div>
    </Link>
  );
}

/** Decisions of the last 24 h by hour: allowed and denied stacked (plain SVG, colours readable in both themes). */
function DecisionBars({ d }: { d: Health["decisions"] }) {
  if (d.series.length === 0) return <p className="text-sm text-slate-600">No decisions in the last 24 hours.</p>;
  const W = 480;
  const H = 80;
  const max = Math.max(1, ...d.series.map((p) => p.allow + p.deny + p.error));
  const n = Math.max(24, d.series.length);
  const start = new Date(d.from).getTime();
  const unit = d.bucket === "day" ? 86_400_000 : d.bucket === "hour" ? 3_600_000 : 60_000;
  const bw = Math.max(2, W / n - 2);
  return (
    <svg
      viewBox={`0 0 ${W} ${H}`}
      className="h-20 w-full"
      role="img"
      aria-label={`Decisions per ${d.bucket}, last 24 hours: ${d.totals.allow} allowed, ${d.totals.deny} denied, ${d.totals.error} errors`}
    >
      {d.series.map((p) => {
        const i = Math.min(n - 1, Math.max(0, Math.floor((new Date(p.t).getTime() - start) / unit)));
        const x = (i * W) / n;
        const hd = (p.deny / max) * H;
        const he = (p.error / max) * H;
        const ha = (p.allow / max) * H;
        return (
          <g key={p.t}>
            <title>{`${new Date(p.t).toLocaleString([], { hour: "2-digit", minute: "2-digit" })}: ${p.allow} allowed, ${p.deny} denied, ${p.error} errors`}</title>
            {ha > 0 ? <rect x={x} y={H - ha} width={bw} height={ha} fill="#10b981" /> : null}
            {he > 0 ? <rect x={x} y={H - ha - he} width={bw} height={he} fill="#f59e0b" /> : null}
            {hd > 0 ? <rect x={x} y={H - ha - he - hd} width={bw} height={hd} fill="#f43f5e" /> : null}
          </g>
        );
      })}
    </svg>
  );
}

/** The Overview's operational health: decisions over time and one tile per thing that needs fixing. */
export function HealthTiles({ tenantId }: { tenantId: string | null }) {
  const params = { tenantId: tenantId ?? undefined };
  const q = useQuery({ queryKey: ["overview", "health", params], queryFn: () => apiFetch<Health>(`/overview${qs(params)}`), refetchInterval: 30_000 });
  const h = q.data;
  const v = (n: number | undefined) => (n === undefined ? "…" : n);
  return (
    <section aria-label="Operational health" className="mb-6">
      <ErrorBanner error={q.error} />
      <Card
        title="Decisions, last 24 hours"
        actions={
          <Link href="/audit?outcome=deny" className="text-sm text-indigo-700 hover:underline">
            See denials
          </Link>
        }
      >
        {h ? (
          <>
            <p className="mb-2 text-sm text-slate-700" data-testid="overview-decisions">
              <strong>{(h.decisions.totals.allow + h.decisions.totals.deny + h.decisions.totals.error).toLocaleString()}</strong> decisions ·{" "}
              <span className="text-rose-700">{h.decisions.totals.deny.toLocaleString()} denied</span>
              {h.decisions.totals.error ? <span className="text-amber-700"> · {h.decisions.totals.error.toLocaleString()} errors</span> : null}
            </p>
            <DecisionBars d={h.decisions} />
          </>
        ) : (
          <div className="h-24 animate-pulse rounded bg-slate-100" />
        )}
      </Card>
      <div className="mt-4 grid grid-cols-1 gap-4 min-[420px]:grid-cols-2 lg:grid-cols-3">
        {h?.agents !== null ? (
          <HealthTile
            testId="tile-agents"
            label="Agents online"
            value={h?.agents ? `${h.agents.online} / ${h.agents.total}` : "…"}
            detail={
              h?.agents
                ? `${h.agents.behind ? `${h.agents.behind} behind the fleet's bundle (up to ${h.agents.maxBehind} revision${h.agents.maxBehind === 1 ? "" : "s"})` : "all on the fleet's bundle"} · last heartbeat ${ago(h.agents.lastHeartbeatAt)}`
                : "Heartbeat within 2 minutes"
            }
            href="/fleets"
            warn={!!h?.agents && (h.agents.behind > 0 || h.agents.online < h.agents.total)}
          />
        ) : null}
        {h?.unpublishedFleets !== null ? (
          <HealthTile
            testId="tile-unpublished"
            label="Unpublished changes"
            value={v(h?.unpublishedFleets ?? undefined)}
            detail="Fleets whose policies or scope mappings changed since their last bundle"
            href="/fleets"
            warn={!!h?.unpublishedFleets}
          />
        ) : null}
        <HealthTile testId="tile-drifted" label="Tools drifted" value={v(h?.toolsDrifted)} detail="Latest version differs from the approved one: review it" href="/servers" warn={!!h?.toolsDrifted} />
        <HealthTile testId="tile-vault" label="Credentials due" value={v(h?.vaultDue)} detail="Vault entries past their rotation date" href="/vault" warn={!!h?.vaultDue} />
        <HealthTile
          testId="tile-clients"
          label="Clients awaiting approval"
          value={v(h?.clientsPending)}
          detail="OAuth clients pending an admin's decision"
          href="/grants?tab=clients"
          warn={!!h?.clientsPending}
        />
      </div>
    </section>
  );
}
