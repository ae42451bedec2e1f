import canonicalize from "canonicalize";
import type { BundleContent, BundleServer } from "@/lib/enforcement/bundle";
import { LIST_FIELD } from "@/lib/enforcement/catalogue-entry";
import { driftKey } from "@/lib/enforcement/decide";

export interface Change<T> {
  added: T[];
  removed: T[];
  changed: T[];
}

export interface BundleDiff {
  policies: Change<{ id: string; name: string; before?: string; after?: string }>;
  mappings: Change<{ id: string; name: string; before?: string; after?: string }>;
  tools: Change<{ id: string; before?: string; after?: string }>;
  /** Servers with every field that differs, old and new value side by side (a reviewer must see where calls and secrets go). */
  servers: Change<{ id: string; name: string; fields: ServerFieldChange[] }>;
}

/** One field of a server that differs between two bundles, as display text. */
export interface ServerFieldChange {
  field: "name" | "resourceUri" | "upstreamUrl" | "tenantIds" | "scopes" | "issuers" | "trust" | "dpop" | "dpopNonce" | "upstreamLogging" | "prm" | "other";
  before?: string;
  after?: string;
}

type AnyServer = BundleServer & {
  trust?: {
    tenantId: string;
    issuer: string;
    jwksUri?: string;
    discovery: boolean;
    algorithms: string[];
    claims?: unknown;
    tenantMapping?: unknown;
    requireTyp?: string;
    revocationEndpoint?: string;
  }[];
};

/**
 * JSON with object keys sorted (RFC 8785). A published bundle is read back
 * from jsonb, which reorders keys: plain JSON.stringify made every server of
 * a draft look "changed" with no field to show.
 */
const canon = (v: unknown) => canonicalize(v) ?? "";

/** Each field's display text: lists are one line per entry, sorted, so a reviewer reads what changed. */
function serverFields(s: AnyServer): Record<Exclude<ServerFieldChange["field"], "other">, string> {
  const issuer = (i: AnyServer["issuers"][number]) =>
    `${i.issuer} keys=${i.jwksUri ?? (i.discovery ? "discovery" : "none")} algs=${i.algorithms.join("/")} claims=${canon(i.claims)}${i.revocationEndpoint ? ` revocation=${i.revocationEndpoint}` : ""}`;
  const trust = (t: NonNullable<AnyServer["trust"]>[number]) =>
    `${t.tenantId}: ${t.issuer} keys=${t.jwksUri ?? (t.discovery ? "discovery" : "none")} algs=${t.algorithms.join("/")}${t.claims ? ` claims=${canon(t.claims)}` : ""}${t.tenantMapping ? ` mapping=${canon(t.tenantMapping)}` : ""}${t.requireTyp ? ` typ=${t.requireTyp}` : ""}${t.revocationEndpoint ? ` revocation=${t.revocationEndpoint}` : ""}`;
  return {
    name: s.name,
    resourceUri: s.resourceUri,
    upstreamUrl: s.upstreamUrl,
    tenantIds: [...s.tenantIds].sort().join(", "),
    scopes: [...s.scopes].sort().join(", "),
    issuers: (s.issuers ?? []).map(issuer).sort().join("\n"),
    trust: (s.trust ?? []).map(trust).sort().join("\n"),
    dpop: s.dpop ?? "off",
    dpopNonce: s.dpopNonce === true ? "on" : "off",
    upstreamLogging: s.upstreamLogging === true ? "on" : "off",
    prm: canon(s.prm),
  };
}

const SHOWN = ["name", "resourceUri", "upstreamUrl", "tenantIds", "scopes", "issuers", "trust", "dpop", "dpopNonce", "upstreamLogging", "prm"] as const;

/** The fields that differ between two versions of a server (every field of an added or removed one). */
export function diffServer(a: AnyServer | undefined, b: AnyServer | undefined): ServerFieldChange[] {
  const x = a ? serverFields(a) : undefined;
  const y = b ? serverFields(b) : undefined;
  const out: ServerFieldChange[] = [];
  for (const field of SHOWN) {
    const before = x?.[field];
    const after = y?.[field];
    if (before === after || (!before && !after)) continue;
    out.push({ field, ...(before !== undefined ? { before } : {}), ...(after !== undefined ? { after } : {}) });
  }
  // A difference outside the fields above (a field added to servers later) is still shown, never hidden.
  if (!out.length && a && b) {
    const rest = (s: AnyServer) => canon(Object.fromEntries(Object.entries(s).filter(([k]) => !(SHOWN as readonly string[]).includes(k))));
    if (rest(a) !== rest(b)) out.push({ field: "other", before: rest(a), after: rest(b) });
  }
  return out;
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
    new Map(
      Object.entries(c?.cedar.policies ?? {})
        .filter(([id]) => (c!.policies[id]?.kind === "scope") === scope)
        .map(([id, text]) => [id, { text, name: c!.policies[id]?.name ?? id }]),
    );
  const policyView = (id: string, x?: { text: string; name: string }, y?: { text: string; name: string }) => ({
    id,
    name: (y ?? x)!.name,
    ...(x ? { before: x.text } : {}),
    ...(y ? { after: y.text } : {}),
  });
  const sameText = (x: { text: string }, y: { text: string }) => x.text === y.text;
  // Keyed like drift (tools `srv/name`, others `srv/<kind>:<key>`): a prompt and a tool of one name are two entries.
  const tools = (c: BundleContent | null) => new Map((c?.catalogue ?? []).map((t) => [driftKey(t.serverId, LIST_FIELD[t.kind ?? "tool"], t.name), t.hash]));
  const servers = (c: BundleContent | null) => new Map((c?.servers ?? []).map((s) => [s.id, s]));
  return {
    policies: diffMaps(pol(a, false), pol(b, false), sameText, policyView),
    mappings: diffMaps(pol(a, true), pol(b, true), sameText, policyView),
    tools: diffMaps(
      tools(a),
      tools(b),
      (x, y) => x === y,
      (id, x, y) => ({ id, ...(x ? { before: x } : {}), ...(y ? { after: y } : {}) }),
    ),
    servers: diffMaps(
      servers(a),
      servers(b),
      (x, y) => diffServer(x, y).length === 0,
      (id, x, y) => ({ id, name: (y ?? x)!.name, fields: diffServer(x, y) }),
    ),
  };
}
