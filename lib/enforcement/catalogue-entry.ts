import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { toolHash, type ToolDefinition } from "./tool-hash";

/**
 * The four kinds of catalogue entry (tools, resources, resource templates,
 * prompts): how each is named, hashed and turned into a Cedar entity. Pure:
 * shared by the catalogue import (lib/catalog), the compiler
 * (lib/bundles/compile.ts), the engine and `decide()`, and the agent.
 */
export const catalogueKinds = ["tool", "resource", "resourceTemplate", "prompt"] as const;
export type CatalogueKind = (typeof catalogueKinds)[number];

/** The field of a list answer that lists each kind, and back. */
export const LIST_FIELD: Record<CatalogueKind, "tools" | "resources" | "resourceTemplates" | "prompts"> = {
  tool: "tools",
  resource: "resources",
  resourceTemplate: "resourceTemplates",
  prompt: "prompts",
};
export const KIND_OF_FIELD = { tools: "tool", resources: "resource", resourceTemplates: "resourceTemplate", prompts: "prompt" } as const satisfies Record<string, CatalogueKind>;

/** The Cedar entity type of each kind; the entity id is `<server id>/<key>`. */
export const ENTITY_TYPE: Record<CatalogueKind, "Tool" | "Resource" | "ResourceTemplate" | "Prompt"> = { tool: "Tool", resource: "Resource", resourceTemplate: "ResourceTemplate", prompt: "Prompt" };

/** Longest key (tool or prompt name, resource URI, URI template) the catalogue and the decision accept. */
export const MAX_ENTRY_KEY = 2048;

/** A resource as `resources/list` lists it (the parts that define it; `size` and `_meta` are not). */
export interface ResourceDefinition {
  uri: string;
  name: string;
  title?: string | null;
  description?: string | null;
  mimeType?: string | null;
  annotations?: Record<string, unknown> | null;
}

/** A resource template as `resources/templates/list` lists it. */
export interface ResourceTemplateDefinition {
  uriTemplate: string;
  name: string;
  title?: string | null;
  description?: string | null;
  mimeType?: string | null;
  annotations?: Record<string, unknown> | null;
}

/** A prompt as `prompts/list` lists it. Prompt arguments are strings (MCP). */
export interface PromptDefinition {
  name: string;
  title?: string | null;
  description?: string | null;
  arguments?: { name: string; title?: string | null; description?: string | null; required?: boolean | null }[] | null;
}

export type EntryDefinition =
  { kind: "tool"; def: ToolDefinition } | { kind: "resource"; def: ResourceDefinition } | { kind: "resourceTemplate"; def: ResourceTemplateDefinition } | { kind: "prompt"; def: PromptDefinition };

const s = (v: unknown): string | null => (typeof v === "string" ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** The catalogue key of an entry as listed (tool/prompt name, resource URI, URI template), or null when it has none. */
export function entryKey(kind: CatalogueKind, item: unknown): string | null {
  const o = obj(item);
  const k = kind === "resource" ? s(o.uri) : kind === "resourceTemplate" ? s(o.uriTemplate) : s(o.name);
  return k !== null && k.length > 0 && k.length <= MAX_ENTRY_KEY ? k : null;
}

/**
 * SHA-256 over the RFC 8785 canonical JSON of what the entry tells a model
 * (name, title, description, schema or arguments, MIME type, annotations).
 * Tools keep `toolHash` (existing approvals stay valid); the other kinds
 * include their kind, so two kinds never share a hash. Throws on input that
 * cannot be canonicalized (callers treat that as changed).
 */
export function entryHash(kind: CatalogueKind, item: unknown): string {
  const o = obj(item);
  if (kind === "tool") return toolHash(o as unknown as ToolDefinition);
  let body: Record<string, unknown>;
  if (kind === "prompt") {
    const args = Array.isArray(o.arguments) ? o.arguments : [];
    body = {
      kind,
      name: o.name,
      title: s(o.title),
      description: s(o.description) ?? "",
      arguments: args.map((a) => {
        const x = obj(a);
        return { name: x.name, title: s(x.title), description: s(x.description) ?? "", required: x.required === true };
      }),
    };
  } else {
    body = {
      kind,
      [kind === "resource" ? "uri" : "uriTemplate"]: kind === "resource" ? o.uri : o.uriTemplate,
      name: o.name,
      title: s(o.title),
      description: s(o.description) ?? "",
      mimeType: s(o.mimeType),
      annotations: o.annotations && typeof o.annotations === "object" ? o.annotations : {},
    };
  }
  const canonical = canonicalize(body);
  if (canonical === undefined) throw new Error("not canonicalizable");
  return `sha256:${createHash("sha256").update(canonical).digest("hex")}`;
}

/**
 * A prompt's declared arguments as the JSON Schema the catalogue stores in
 * `inputSchema` (every argument a string, as MCP defines them), so the
 * argument typing and the rule builder treat them like tool arguments.
 */
export function promptInputSchema(def: PromptDefinition): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const a of def.arguments ?? []) {
    if (!a || typeof a.name !== "string") continue;
    Object.defineProperty(properties, a.name, { value: { type: "string", ...(a.description ? { description: a.description } : {}) }, enumerable: true, configurable: true, writable: true });
    if (a.required) required.push(a.name);
  }
  return { type: "object", properties, ...(required.length ? { required } : {}) };
}

/** Longest URI matched against templates; most variables one template may have. */
export const MAX_TEMPLATE_URI = 4096;
const MAX_TEMPLATE_VARS = 32;

type Part = { lit: string } | { vars: string[]; op: string };

function parseTemplate(t: string): Part[] | null {
  const parts: Part[] = [];
  let i = 0;
  let nvars = 0;
  while (i < t.length) {
    const open = t.indexOf("{", i);
    if (open < 0) {
      parts.push({ lit: t.slice(i) });
      break;
    }
    if (open > i) parts.push({ lit: t.slice(i, open) });
    const close = t.indexOf("}", open);
    if (close < 0) return null;
    let expr = t.slice(open + 1, close);
    const op = /^[+#./;?&]/.test(expr) ? expr[0]! : "";
    if (op) expr = expr.slice(1);
    const vars = expr.split(",").map((v) => v.replace(/(\*|:\d+)$/, ""));
    if (vars.some((v) => !/^[A-Za-z0-9_.%]+$/.test(v))) return null;
    nvars += vars.length;
    if (nvars > MAX_TEMPLATE_VARS) return null;
    parts.push({ vars, op });
    i = close + 1;
  }
  return parts;
}

const decode = (v: string) => {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
};

/**
 * Matches a URI against an RFC 6570 URI template, without backtracking:
 * each expression takes the text up to the next literal (the first
 * occurrence), a simple `{x}` never spans `/`, `?` or `#`, and `{?a,b}` /
 * `{&a}` take the rest of the query. Returns the variables (decoded strings)
 * or null when it does not match. Conservative: a URI this does not match is
 * not read through the template (denied), never the reverse.
 */
export function matchTemplate(template: string, uri: string): Record<string, string> | null {
  if (uri.length > MAX_TEMPLATE_URI || template.length > MAX_ENTRY_KEY) return null;
  const parts = parseTemplate(template);
  if (!parts) return null;
  const out = Object.create(null) as Record<string, string>;
  const set = (k: string, v: string) => Object.defineProperty(out, k, { value: v, enumerable: true, configurable: true, writable: true });
  let pos = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if ("lit" in p) {
      if (!uri.startsWith(p.lit, pos)) return null;
      pos += p.lit.length;
      continue;
    }
    if (p.op === "?" || p.op === "&") {
      // The query: `name=value` pairs up to a fragment.
      const end = uri.indexOf("#", pos) < 0 ? uri.length : uri.indexOf("#", pos);
      const q = uri.slice(pos, end);
      if (q.length && q[0] !== (p.op === "?" ? "?" : "&")) return null;
      for (const pair of q.slice(1).split("&")) {
        const eq = pair.indexOf("=");
        const k = decode(eq < 0 ? pair : pair.slice(0, eq));
        if (p.vars.includes(k)) set(k, decode(eq < 0 ? "" : pair.slice(eq + 1)));
      }
      pos = end;
      continue;
    }
    const next = parts[i + 1];
    let end: number;
    if (next && "lit" in next && next.lit.length) {
      end = uri.indexOf(next.lit, pos);
      if (end < 0) return null;
    } else if (next) {
      // Two expressions with no literal between them: ambiguous, not matched.
      return null;
    } else end = uri.length;
    const value = uri.slice(pos, end);
    const reserved = p.op === "+" || p.op === "#";
    if (!reserved && /[/?#]/.test(p.op === "/" ? value.slice(1) : value)) return null;
    const values = p.op === "/" || p.op === "." ? value.slice(value.length ? 1 : 0).split(p.op) : value.split(",");
    p.vars.forEach((v, j) => set(v, decode(values[j] ?? "")));
    pos = end;
  }
  return pos === uri.length ? out : null;
}

/** The template's variable names (for the Cedar context of reads through it), or [] when it does not parse. */
export function templateVariables(template: string): string[] {
  const parts = parseTemplate(template);
  const out: string[] = [];
  for (const p of parts ?? []) if ("vars" in p) for (const v of p.vars) if (!out.includes(v)) out.push(v);
  return out;
}

/**
 * A URI in a normal form for comparing resources (RFC 3986 §6.2.2 and a bit
 * more, since upstreams resolve paths their own way): scheme and authority
 * lowercased, percent-escapes of unreserved characters decoded and the others
 * uppercased, `.` and `..` segments removed, repeated slashes in the path
 * collapsed. Two URIs with one normal form are treated as one resource, so a
 * policy on an approved resource cannot be sidestepped by spelling its URI
 * differently (`%70ayroll`, `a//b`, `x/../b`) through a broad template.
 */
export function normalizeUri(uri: string): string {
  if (uri.length > MAX_TEMPLATE_URI) return uri;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):([\s\S]*)$/.exec(uri);
  if (!m) return uri;
  const rest = m[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => {
    const c = String.fromCharCode(parseInt(h, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${h.toUpperCase()}`;
  });
  const cut = rest.search(/[?#]/);
  const tail = cut < 0 ? "" : rest.slice(cut);
  let path = cut < 0 ? rest : rest.slice(0, cut);
  let authority = "";
  if (path.startsWith("//")) {
    const slash = path.indexOf("/", 2);
    authority = (slash < 0 ? path : path.slice(0, slash)).toLowerCase();
    path = slash < 0 ? "" : path.slice(slash);
  }
  const segs = path.split("/");
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === ".") continue;
    if (s === "..") {
      if (out.length > 1 || (out.length === 1 && out[0] !== "")) out.pop();
      continue;
    }
    // An empty segment inside the path (a repeated slash) is dropped; a leading or trailing one is kept.
    if (s === "" && i > 0 && i < segs.length - 1) continue;
    out.push(s);
  }
  return `${m[1]!.toLowerCase()}:${authority}${out.join("/")}${tail}`;
}
