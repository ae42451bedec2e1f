"use client";

import { useEffect, useRef, useState, type PointerEvent as ReactPointerEvent } from "react";

export type Bucket = "minute" | "hour" | "day";
export interface SeriesPoint {
  t: string;
  allow: number;
  deny: number;
  error: number;
}

export const BUCKET_MS: Record<Bucket, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
export const OUTCOME_COLORS = { allow: "#10b981", deny: "#f43f5e", error: "#f59e0b" } as const;
const OUTCOMES = ["allow", "deny", "error"] as const;

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Tick steps for the time axis; the smallest giving at most ~8 ticks on the plot's width is used. */
const STEPS = [MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

/** 1, 2 or 5 × 10^k at or above `n`: the counts axis' top. */
export function niceCeil(n: number): number {
  if (n <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

/**
 * Ticks of the time axis for [from, to), in the viewer's zone: on whole
 * minutes, hours or local midnights of a step chosen so at most `maxTicks`
 * fit. Labels: "14:00" within a day (the date at midnight), "Dec 5" for days.
 */
export function timeTicks(from: number, to: number, maxTicks: number): { t: number; label: string; major: boolean }[] {
  const span = Math.max(1, to - from);
  const step = STEPS.find((s) => span / s <= maxTicks) ?? STEPS[STEPS.length - 1]!;
  const out: { t: number; label: string; major: boolean }[] = [];
  const first = new Date(from);
  if (step >= DAY) {
    first.setHours(0, 0, 0, 0);
    if (first.getTime() < from) first.setDate(first.getDate() + 1);
    for (const d = first; d.getTime() < to && out.length < 60; d.setDate(d.getDate() + step / DAY)) {
      out.push({ t: d.getTime(), label: d.toLocaleDateString([], { month: "short", day: "numeric" }), major: true });
    }
    return out;
  }
  // Align on the step in local time (offset of the zone at the start; DST shifts a tick by an hour at most).
  const offset = -first.getTimezoneOffset() * MIN;
  let t = Math.ceil((from + offset) / step) * step - offset;
  for (; t < to && out.length < 60; t += step) {
    const d = new Date(t);
    const midnight = d.getHours() === 0 && d.getMinutes() === 0;
    out.push({
      t,
      label: midnight && step >= HOUR ? d.toLocaleDateString([], { month: "short", day: "numeric" }) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      major: midnight,
    });
  }
  return out;
}

export function bucketLabel(t: string | number, bucket: Bucket) {
  const d = new Date(t);
  return bucket === "day" ? d.toLocaleDateString() : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

const M = { left: 40, right: 8, top: 8, bottom: 20 };
const PLOT_H = 120;

/**
 * Stacked bars of decisions per bucket, placed on a time axis (a bucket with
 * no decision is a gap), with a counts axis. A click (or Enter) on a bar
 * shows that bucket's decisions; dragging across the plot selects a time
 * range to zoom into (`onZoom`). Plain SVG sized to its container.
 */
export function OutcomeChart({
  bucket,
  from,
  to,
  series,
  onBucket,
  onZoom,
}: {
  bucket: Bucket;
  from: number;
  to: number;
  series: SeriesPoint[];
  onBucket?: (t: string) => void;
  onZoom?: (from: number, to: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(720);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(([e]) => e && setWidth(Math.max(240, Math.round(e.contentRect.width))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const [drag, setDrag] = useState<{ x0: number; x1: number; moved: boolean } | null>(null);
  const dragged = useRef(false);

  const plotW = width - M.left - M.right;
  const span = Math.max(1, to - from);
  const xOf = (t: number) => M.left + ((t - from) / span) * plotW;
  const tOf = (x: number) => from + ((Math.min(Math.max(x, M.left), M.left + plotW) - M.left) / plotW) * span;
  const max = niceCeil(Math.max(1, ...series.map((p) => p.allow + p.deny + p.error)));
  const yOf = (n: number) => M.top + PLOT_H - (n / max) * PLOT_H;
  const bw = Math.max(2, (BUCKET_MS[bucket] / span) * plotW - 1);
  const ticks = timeTicks(from, to, Math.max(2, Math.floor(plotW / 60)));
  const yTicks = [0, max / 2, max].filter((v, i, a) => Number.isInteger(v) && a.indexOf(v) === i);

  const localX = (e: ReactPointerEvent) => e.clientX - (e.currentTarget as SVGElement).getBoundingClientRect().left;
  const onDown = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (!onZoom || e.button !== 0) return;
    dragged.current = false;
    const x = localX(e);
    setDrag({ x0: x, x1: x, moved: false });
  };
  const onMove = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (!drag) return;
    const x = localX(e);
    // A drag (not a click on a bar) from here on: keep the pointer even outside the chart.
    if (!dragged.current && Math.abs(x - drag.x0) > 4) {
      dragged.current = true;
      e.currentTarget.setPointerCapture(e.pointerId);
    }
    setDrag({ ...drag, x1: x, moved: dragged.current });
  };
  const onUp = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (!drag) return;
    const [a, b] = [Math.min(drag.x0, localX(e)), Math.max(drag.x0, localX(e))];
    setDrag(null);
    if (dragged.current && onZoom) {
      const [t0, t1] = [tOf(a), tOf(b)];
      if (t1 - t0 >= MIN) onZoom(t0, t1);
    }
  };

  if (series.length === 0) return <p className="text-sm text-slate-500">No decisions in this range.</p>;
  return (
    <div ref={box} className="min-w-0">
      <svg
        width={width}
        height={M.top + PLOT_H + M.bottom}
        className={onZoom ? "cursor-crosshair touch-pan-y select-none" : undefined}
        role="img"
        aria-label={`Decisions per ${bucket} by outcome, ${bucketLabel(from, bucket)} to ${bucketLabel(to, bucket)}${onZoom ? "; drag across the chart to zoom into a time range" : ""}`}
        data-testid="outcome-chart"
        data-from={from}
        data-to={to}
        onPointerDown={onDown}
        onPointerMove={onMove}
        onPointerUp={onUp}
        onPointerCancel={() => setDrag(null)}
      >
        {/* Counts axis: gridlines and labels. */}
        {yTicks.map((v) => (
          <g key={v} data-testid="chart-y-tick">
            <line x1={M.left} x2={M.left + plotW} y1={yOf(v)} y2={yOf(v)} stroke="#e2e8f0" />
            <text x={M.left - 4} y={yOf(v) + 3} fontSize={10} fill="#64748b" textAnchor="end">
              {v.toLocaleString()}
            </text>
          </g>
        ))}
        {/* Time axis. */}
        {ticks.map((k) => (
          <g key={k.t} data-testid="chart-x-tick">
            <line x1={xOf(k.t)} x2={xOf(k.t)} y1={M.top + PLOT_H} y2={M.top + PLOT_H + 4} stroke="#94a3b8" />
            <text x={xOf(k.t)} y={M.top + PLOT_H + 15} fontSize={10} fill={k.major ? "#334155" : "#64748b"} fontWeight={k.major ? 600 : 400} textAnchor="middle">
              {k.label}
            </text>
          </g>
        ))}
        {series.map((p) => {
          const t = Date.parse(p.t);
          const x = xOf(t);
          let acc = 0;
          return (
            <g
              key={p.t}
              data-testid="chart-bar"
              data-t={p.t}
              role={onBucket ? "button" : undefined}
              tabIndex={onBucket ? 0 : undefined}
              aria-label={onBucket ? `Show the decisions of ${bucketLabel(p.t, bucket)}` : undefined}
              className={onBucket ? "cursor-pointer outline-none hover:opacity-80 focus-visible:opacity-70" : undefined}
              onClick={onBucket ? () => !dragged.current && onBucket(p.t) : undefined}
              onKeyDown={onBucket ? (e) => (e.key === "Enter" || e.key === " ") && onBucket(p.t) : undefined}
            >
              <title>{`${bucketLabel(p.t, bucket)}: ${p.allow} allowed, ${p.deny} denied, ${p.error} errors${onBucket ? " (click to show them)" : ""}`}</title>
              <rect x={x} y={M.top} width={bw} height={PLOT_H} fill="transparent" />
              {OUTCOMES.map((o) => {
                if (!p[o]) return null;
                const y0 = yOf(acc);
                acc += p[o];
                return <rect key={o} x={x} y={yOf(acc)} width={bw} height={Math.max(1, y0 - yOf(acc))} fill={OUTCOME_COLORS[o]} />;
              })}
            </g>
          );
        })}
        <line x1={M.left} x2={M.left + plotW} y1={M.top + PLOT_H} y2={M.top + PLOT_H} stroke="#94a3b8" />
        {drag?.moved ? (
          <rect
            data-testid="chart-selection"
            x={Math.max(M.left, Math.min(drag.x0, drag.x1))}
            y={M.top}
            width={Math.abs(drag.x1 - drag.x0)}
            height={PLOT_H}
            fill="#6366f1"
            fillOpacity={0.15}
            stroke="#6366f1"
            pointerEvents="none"
          />
        ) : null}
      </svg>
    </div>
  );
}
