"use client";

import { Badge } from "@/components/ui";

interface Item {
  id: string;
  name?: string;
  before?: string;
  after?: string;
}
interface Change {
  added: Item[];
  removed: Item[];
  changed: Item[];
}
export interface BundleDiff {
  policies: Change;
  mappings: Change;
  tools: Change;
  servers: Change;
}

const sections: [keyof BundleDiff, string][] = [
  ["policies", "Policies"],
  ["mappings", "Scope mappings"],
  ["tools", "Approved tools"],
  ["servers", "Servers"],
];

/** What a revision changes: each section lists added, removed and changed items with their Cedar. */
export function DiffView({ diff }: { diff: BundleDiff }) {
  const total = sections.reduce((n, [k]) => n + diff[k].added.length + diff[k].removed.length + diff[k].changed.length, 0);
  if (total === 0) return <p className="text-sm text-slate-600" data-testid="diff-empty">No change.</p>;
  return (
    <div className="space-y-4" data-testid="bundle-diff">
      {sections.map(([k, title]) => {
        const c = diff[k];
        if (!c.added.length && !c.removed.length && !c.changed.length) return null;
        return (
          <section key={k}>
            <h3 className="mb-1 text-sm font-semibold text-slate-900">{title}</h3>
            <ul className="space-y-2 text-sm">
              {(["added", "removed", "changed"] as const).flatMap((kind) =>
                c[kind].map((i) => (
                  <li key={`${kind}-${i.id}`} data-testid={`diff-${k}-${kind}`} className="rounded-md ring-1 ring-slate-200">
                    <div className="flex items-center gap-2 px-2 py-1">
                      <Badge color={kind === "added" ? "green" : kind === "removed" ? "red" : "amber"}>{kind}</Badge>
                      <span className="font-medium">{i.name ?? i.id}</span>
                      {i.name ? <code className="text-xs text-slate-500">{i.id}</code> : null}
                    </div>
                    {k === "policies" || k === "mappings" ? (
                      <div className="grid grid-cols-1 gap-0 border-t border-slate-100 md:grid-cols-2">
                        {i.before !== undefined ? <pre className="overflow-x-auto bg-rose-50 p-2 font-mono text-xs text-rose-900">{i.before}</pre> : <div />}
                        {i.after !== undefined ? <pre className="overflow-x-auto bg-emerald-50 p-2 font-mono text-xs text-emerald-900">{i.after}</pre> : <div />}
                      </div>
                    ) : i.before || i.after ? (
                      <div className="border-t border-slate-100 px-2 py-1 font-mono text-xs text-slate-600">
                        {i.before ? <div>- {i.before}</div> : null}
                        {i.after ? <div>+ {i.after}</div> : null}
                      </div>
                    ) : null}
                  </li>
                )),
              )}
            </ul>
          </section>
        );
      })}
    </div>
  );
}
