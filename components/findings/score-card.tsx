"use client";

import { Card, ErrorBanner } from "@/components/ui";
import { useScores } from "./queries";

/** The tenant's privilege score now and per stored day: the share of granted capability used in the window. */
export function ScoreCard({ tenantId }: { tenantId: string }) {
  const q = useScores(tenantId);
  const cur = q.data?.current;
  const hist = q.data?.history ?? [];
  return (
    <Card title="Privilege score">
      <ErrorBanner error={q.error} />
      {cur ? (
        <div className="space-y-3 text-sm" data-testid="privilege-score">
          <p>
            <span className="text-3xl font-semibold text-slate-900">{cur.score}%</span> of granted capability used in the window: <strong>{cur.used}</strong> of <strong>{cur.granted}</strong> (
            {cur.pairs.used}/{cur.pairs.granted} scope × tool pairs, {cur.grants.used}/{cur.grants.granted} grants).{" "}
            <span className="text-slate-600">{cur.granted - cur.used} unused: remedies below bring this down.</span>
          </p>
          {hist.length ? (
            <div>
              <p className="mb-1 text-xs text-slate-500">Stored daily (unused capability per day)</p>
              <ol className="flex h-16 items-end gap-1" aria-label="Privilege score per day">
                {hist.map((h) => (
                  <li key={h.day} className="flex-1" title={`${h.day}: ${h.score}% used, ${h.unused} unused of ${h.granted}`}>
                    <div className="rounded-t bg-indigo-400" style={{ height: `${Math.max(4, h.score * 0.6)}px` }} />
                    <span className="sr-only">
                      {h.day}: {h.score}%, {h.unused} unused
                    </span>
                  </li>
                ))}
              </ol>
            </div>
          ) : (
            <p className="text-xs text-slate-500">The daily history starts with the findings job&apos;s first run (hourly in each control plane, once across replicas).</p>
          )}
        </div>
      ) : q.isPending ? (
        <p className="text-sm text-slate-500">Computing…</p>
      ) : null}
    </Card>
  );
}
