import type { BundleContent } from "@/lib/enforcement/bundle";

export interface Change<T> {
  added: T[];
  removed: T[];
  changed: T[];
}

export interface BundleDiff {
  policies: Change<{ id: string; name: string; before?: string; after?: string }>;
  mappings: Change<{ id: string; name: string; before?: string; after?: string }>;
  tools: Change<{ id: string; before?: string; after?: string }>;
  servers: Change<{ id: string; name: string }>;
}

function diffMaps<V, T>(a: Map<string, V>, b: Map<string, V>, same: (x: V, y: V) => boolean, view: (id: string, before?: V, after?: V) => T): Change<T> {
  const out: Change<T> = { added: [], removed: [], changed: [] };
  for (const [id, v] of b) {
    const old = a.get(id);
    if (old === undefined) out.added.push(view(id, undefined, v));
    else if (!same(old, v)) out.changed.push(view(id, old, v));
  }
  for (const [id, v] of a) if (!b.has(id)) out.removed.push(view(id, v, undefined));
  return out;
}

/** What changes from `a` to `b`: policies (admin-written), scope mappings, approved tools and servers. */
export function diffBundles(a: BundleContent | null, b: BundleContent): BundleDiff {
  const pol = (c: BundleContent | null, scope: boolean) =>
    new Map(Object.entries(c?.cedar.policies ?? {}).filter(([id]) => (c!.policies[id]?.kind === "scope") === scope).map(([id, text]) => [id, { text, name: c!.policies[id]?.name ?? id }]));
  const policyView = (id: string, x?: { text: string; name: string }, y?: { text: string; name: string }) => ({ id, name: (y ?? x)!.name, ...(x ? { before: x.text } : {}), ...(y ? { after: y.text } : {}) });
  const sameText = (x: { text: string }, y: { text: string }) => x.text === y.text;
  const tools = (c: BundleContent | null) => new Map((c?.catalogue ?? []).map((t) => [`${t.serverId}/${t.name}`, t.hash]));
  const servers = (c: BundleContent | null) => new Map((c?.servers ?? []).map((s) => [s.id, s]));
  return {
    policies: diffMaps(pol(a, false), pol(b, false), sameText, policyView),
    mappings: diffMaps(pol(a, true), pol(b, true), sameText, policyView),
    tools: diffMaps(tools(a), tools(b), (x, y) => x === y, (id, x, y) => ({ id, ...(x ? { before: x } : {}), ...(y ? { after: y } : {}) })),
    servers: diffMaps(servers(a), servers(b), (x, y) => JSON.stringify(x) === JSON.stringify(y), (id, x, y) => ({ id, name: (y ?? x)!.name })),
  };
}
