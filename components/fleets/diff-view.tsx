"use client";

import { Badge } from "@/components/ui";
import { layoutCedar, TextDiff } from "@/components/ui/text-diff";

interface Item {
  id: string;
  name?: string;
  before?: string;
  after?: string;
  /** Servers: each field that differs, old and new. */
  fields?: { field: string; before?: string; after?: string }[];
}

const fieldLabels: Record<string, string> = {
  name: "Name",
  resourceUri: "Resource URI",
  upstreamUrl: "Upstream URL",
  tenantIds: "Tenants admitted",
  scopes: "Scopes",
  issuers: "Advertised issuers",
  trust: "Trusted issuers (per tenant)",
  dpop: "Sender-constrained tokens (DPoP)",
  dpopNonce: "DPoP nonces required",
  upstreamLogging: "Upstream logging passes the agent",
  prm: "Protected resource metadata",
  other: "Other settings (JSON)",
};
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

/** What a revision changes: each section lists added, removed and changed items with a line diff of their Cedar (changed tokens highlighted); servers field by field (where calls, tokens and secrets go). */
export function DiffView({ diff }: { diff: BundleDiff }) {
  const total = sections.reduce((n, [k]) => n + diff[k].added.length + diff[k].removed.length + diff[k].changed.length, 0);
  if (total === 0)
    return (
      <p className="text-sm text-slate-600" data-testid="diff-empty">
        No change.
      </p>
    );
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
                    {i.fields?.length ? (
                      <table className="w-full border-t border-slate-100 text-xs" data-testid={`diff-server-fields-${i.id}`}>
                        <tbody>
                          {i.fields.map((f) => (
                            <tr key={f.field} data-testid={`diff-server-field-${f.field}`} className="align-top">
                              <th scope="row" className="w-40 px-2 py-1 text-left font-medium text-slate-700">
                                {fieldLabels[f.field] ?? f.field}
                              </th>
                              <td className="whitespace-pre-wrap break-all bg-rose-50 px-2 py-1 font-mono text-rose-900">{f.before ?? "—"}</td>
                              <td className="whitespace-pre-wrap break-all bg-emerald-50 px-2 py-1 font-mono text-emerald-900">{f.after ?? "—"}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    ) : k === "policies" || k === "mappings" ? (
                      <div className="border-t border-slate-100 py-1">
                        <TextDiff before={layoutCedar(i.before ?? "")} after={layoutCedar(i.after ?? "")} label={`Cedar of ${i.name ?? i.id}`} testId={`diff-cedar-${i.id}`} />
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
