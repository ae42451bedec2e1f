// Cedar for CodeMirror 6: a stream tokenizer, completion driven by the server's
// generated Cedar schema (GET /servers/{id}/cedar-schema), hover help, and the
// validator's issues as diagnostics. Pure functions on text; no React.
import type { Completion, CompletionContext, CompletionResult } from "@codemirror/autocomplete";
import { StreamLanguage, type StringStream } from "@codemirror/language";
import type { Diagnostic } from "@codemirror/lint";
import type { Text } from "@codemirror/state";
import type { CedarIssue, CedarSchemaInfo } from "./types";

export const KEYWORDS = ["permit", "forbid", "when", "unless", "in", "has", "like", "is", "if", "then", "else"] as const;
const SCOPE_VARS = ["principal", "action", "resource", "context"] as const;
const KEYWORD_SET = new Set<string>([...KEYWORDS, ...SCOPE_VARS]);
const ATOMS = new Set(["true", "false"]);

/** Cedar's tokens, as CodeMirror's legacy token names (mapped to highlight tags by StreamLanguage). */
export const cedarLanguage = StreamLanguage.define<{ inString: boolean }>({
  name: "cedar",
  startState: () => ({ inString: false }),
  token(stream: StringStream, state) {
    if (state.inString) return readString(stream, state);
    if (stream.eatSpace()) return null;
    if (stream.match("//")) {
      stream.skipToEnd();
      return "comment";
    }
    if (stream.peek() === '"') {
      stream.next();
      state.inString = true;
      return readString(stream, state);
    }
    if (stream.match(/^@[A-Za-z_]\w*/)) return "meta";
    if (stream.match(/^\d+/)) return "number";
    const word = stream.match(/^[A-Za-z_]\w*/) as RegExpMatchArray | null;
    if (word) {
      const w = word[0];
      if (stream.match("::", false)) return "typeName";
      if (KEYWORD_SET.has(w)) return "keyword";
      if (ATOMS.has(w)) return "atom";
      // An attribute after a dot (context.args.amount, resource.risk).
      const before = stream.string.slice(0, stream.start);
      if (/\.\s*$/.test(before)) return "propertyName";
      return /^[A-Z]/.test(w) ? "typeName" : "variableName";
    }
    if (stream.match("::")) return "punctuation";
    if (stream.match(/^(==|!=|<=|>=|&&|\|\||[<>!+\-*])/)) return "operator";
    stream.next();
    return null;
  },
  languageData: { commentTokens: { line: "//" }, closeBrackets: { brackets: ["(", "[", "{", '"'] } },
});

function readString(stream: StringStream, state: { inString: boolean }) {
  let escaped = false;
  let ch: string | void;
  while ((ch = stream.next()) != null) {
    if (ch === '"' && !escaped) {
      state.inString = false;
      return "string";
    }
    escaped = !escaped && ch === "\\";
  }
  // Cedar strings do not span lines; an unterminated one ends with its line.
  state.inString = false;
  return "string";
}

// ---------------------------------------------------------------------------
// The schema, read for completion.

type SchemaType = { type?: string; attributes?: Record<string, SchemaType>; element?: SchemaType; name?: string; required?: boolean };
interface SchemaJson {
  [ns: string]: { entityTypes: Record<string, { shape?: SchemaType; memberOfTypes?: string[] }>; actions: Record<string, { appliesTo?: { resourceTypes?: string[]; context?: SchemaType } }> };
}

/** What completion offers, derived once per schema answer. */
export interface CedarVocabulary {
  serverId: string;
  entityTypes: string[];
  actions: string[];
  /** Attributes of each entity type (its shape). */
  entityAttrs: Record<string, Record<string, SchemaType>>;
  /** The context record of tool calls (args, scopes, client, time…). */
  context: Record<string, SchemaType>;
  /** Approved, unblocked tools (not resources or prompts), each with the argument names its approved input schema declares. */
  tools: { name: string; args: string[] }[];
  /** Argument types across the approved tools (context.args.*). */
  argTypes: Record<string, string>;
}

export function vocabulary(info: CedarSchemaInfo & { schema?: unknown }, serverId: string): CedarVocabulary {
  const ns = ((info.schema ?? {}) as SchemaJson)[""] ?? { entityTypes: {}, actions: {} };
  const entityAttrs = Object.fromEntries(Object.entries(ns.entityTypes).map(([t, d]) => [t, d.shape?.attributes ?? {}]));
  const context = ns.actions.call_tool?.appliesTo?.context?.attributes ?? {};
  return {
    serverId,
    entityTypes: [...Object.keys(ns.entityTypes), "Action"],
    actions: Object.keys(ns.actions),
    entityAttrs,
    context,
    tools: info.tools.filter((t) => (t.kind ?? "tool") === "tool" && t.approved && !t.blocked).map((t) => ({ name: t.name, args: t.arguments ?? Object.keys(info.arguments) })),
    argTypes: info.arguments,
  };
}

/** A schema type as Cedar writes it (Set<String>, Long, a record's fields). */
export function typeLabel(t: SchemaType | undefined): string {
  if (!t) return "";
  if (t.type === "Set") return `Set<${typeLabel(t.element)}>`;
  if (t.type === "Record") return `{ ${Object.keys(t.attributes ?? {}).join(", ")} }`;
  if (t.type === "Entity" || t.type === "EntityOrCommon") return t.name ?? "entity";
  return t.type ?? "";
}
const argLabel = (t: string | undefined) => (t === "SetString" ? "Set<String>" : t === "Bool" ? "Boolean" : (t ?? ""));

/** The tools a policy names (Tool::"<server>/<name>"), so context.args offers only their arguments. */
export function namedTools(text: string, v: CedarVocabulary): CedarVocabulary["tools"] {
  const names = new Set(
    [...text.matchAll(/Tool::"([^"\n]*)"/g)]
      .map((m) => m[1]!)
      .filter((n) => n.startsWith(`${v.serverId}/`))
      .map((n) => n.slice(v.serverId.length + 1)),
  );
  return v.tools.filter((t) => names.has(t.name));
}

/** Argument names completion offers: those of the named tools, else of every approved tool. */
export function argumentsFor(text: string, v: CedarVocabulary): { name: string; type: string; tools: string[] }[] {
  const named = namedTools(text, v);
  const pool = named.length ? named : v.tools;
  const by = new Map<string, string[]>();
  for (const t of pool) for (const a of t.args) by.set(a, [...(by.get(a) ?? []), t.name]);
  // Arguments with conflicting types are left out of the schema (argTypes), so Cedar could not test them.
  return [...by.entries()]
    .filter(([a]) => a in v.argTypes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, tools]) => ({ name, type: argLabel(v.argTypes[name]), tools }));
}

/** Attributes reachable by a dotted path from a root variable (context.time → hour, weekday, epoch). */
function attributesAt(path: string[], text: string, v: CedarVocabulary): Completion[] {
  const [root, ...rest] = path;
  if (root === "context" && rest.length === 1 && rest[0] === "args") {
    return argumentsFor(text, v).map((a) => ({
      label: a.name,
      type: "property",
      detail: a.type,
      info: `Argument of ${a.tools.join(", ")}. Optional: guard the read with \`context.args has ${a.name} &&\`.`,
    }));
  }
  let attrs: Record<string, SchemaType> | undefined =
    root === "context" ? v.context : root === "principal" ? v.entityAttrs.User : root === "resource" ? { ...v.entityAttrs.Tool, ...resourceAttrs(v) } : undefined;
  for (const k of rest) attrs = attrs?.[k]?.attributes;
  if (!attrs) return [];
  return Object.entries(attrs).map(([k, t]) => ({ label: k, type: "property", detail: typeLabel(t) }));
}

function resourceAttrs(v: CedarVocabulary): Record<string, SchemaType> {
  const out: Record<string, SchemaType> = {};
  for (const t of ["Resource", "ResourceTemplate", "Prompt"]) Object.assign(out, v.entityAttrs[t] ?? {});
  return out;
}

const keywordOptions: Completion[] = [
  ...KEYWORDS.map((k) => ({ label: k, type: "keyword" })),
  ...SCOPE_VARS.map((k) => ({ label: k, type: "variable" })),
  { label: "true", type: "constant" },
  { label: "false", type: "constant" },
];

/** The completion source for one vocabulary (rebuilt when the schema answer changes). */
export function cedarCompletions(v: CedarVocabulary) {
  return (cx: CompletionContext): CompletionResult | null => {
    const line = cx.state.doc.lineAt(cx.pos);
    const before = line.text.slice(0, cx.pos - line.from);
    if (/\/\/.*$/.test(before.replace(/"(?:[^"\\]|\\.)*"/g, '""'))) return null; // in a comment

    // Inside an entity id: Action::"…", Tool::"…", Group::"…".
    const id = /([A-Za-z_]\w*)::"([^"]*)$/.exec(before);
    if (id) {
      const from = cx.pos - id[2]!.length;
      const close = line.text.slice(cx.pos - line.from).startsWith('"') ? "" : '"';
      if (id[1] === "Action") return { from, options: v.actions.map((a) => ({ label: a, apply: a + close, type: "enum", detail: "action" })), validFor: /^[\w]*$/ };
      if (id[1] === "Tool")
        return {
          from,
          options: v.tools.map((t) => ({
            label: `${v.serverId}/${t.name}`,
            displayLabel: t.name,
            apply: `${v.serverId}/${t.name}${close}`,
            type: "class",
            detail: t.args.length ? `args: ${t.args.join(", ")}` : "no arguments",
          })),
          validFor: /^[^"]*$/,
        };
      return null;
    }
    // In any other string, nothing to offer.
    if (((before.match(/(?<!\\)"/g) ?? []).length & 1) === 1) return null;

    // context.args has | : the arguments, as the guard Cedar wants before reading an optional one.
    const guard = /\bcontext\.args\s+has\s+(\w*)$/.exec(before);
    if (guard) {
      const options = argumentsFor(cx.state.doc.toString(), v).map((a) => ({ label: a.name, type: "property", detail: a.type, info: `Argument of ${a.tools.join(", ")}` }));
      return options.length ? { from: cx.pos - guard[1]!.length, options, validFor: /^\w*$/ } : null;
    }
    // context.args.| , context.time.| , principal.| , resource.|
    const dotted = /\b(context|principal|resource)((?:\.[A-Za-z_]\w*)*)\.(\w*)$/.exec(before);
    if (dotted) {
      const path = [dotted[1]!, ...dotted[2]!.split(".").filter(Boolean)];
      const options = attributesAt(path, cx.state.doc.toString(), v);
      return options.length ? { from: cx.pos - dotted[3]!.length, options, validFor: /^\w*$/ } : null;
    }
    // A type before `::` (User::, Tool::), or a keyword.
    const word = cx.matchBefore(/[A-Za-z_]\w*/);
    if (!word && !cx.explicit) return null;
    const from = word ? word.from : cx.pos;
    return {
      from,
      options: [...keywordOptions, ...v.entityTypes.map((t) => ({ label: `${t}::`, type: "type", detail: "entity type", boost: -1 }))],
      validFor: /^\w*$/,
    };
  };
}

// ---------------------------------------------------------------------------
// Hover help and diagnostics.

const KEYWORD_HELP: Record<string, string> = {
  permit: "permit (principal, action, resource) when { … }; allows the request when every condition holds, unless a forbid matches.",
  forbid: "forbid (…) when { … }; denies the request when it matches. A matching forbid always wins over permits.",
  when: "when { condition } — the policy applies only if the condition is true.",
  unless: "unless { condition } — the policy applies only if the condition is false.",
  has: "e has attr — true when the record or entity has that (optional) attribute. Test it before reading an optional argument.",
  like: 'String pattern match; * matches any sequence: context.client like "claude*".',
  in: 'Membership: principal in Group::"admins", resource in Server::"…", or a value in a set [a, b].',
  is: "Type test: resource is Tool.",
  context: "The request's context: args (the tool's arguments), scopes, client, tenant, time, delegation, network, token.",
  principal: 'The calling user: User::"<issuer>#<subject>", with sub and iss.',
  resource: 'What is acted on: Tool::"<server>/<tool>" (or a resource, template or prompt).',
  action: 'The MCP operation: Action::"call_tool", "list_tools", "read_resource"…',
};

/** Hover text for the word at `pos`, or null. */
export function hoverText(doc: Text, pos: number, v: CedarVocabulary | null): string | null {
  const line = doc.lineAt(pos);
  const i = pos - line.from;
  const left = /[\w]*$/.exec(line.text.slice(0, i))![0];
  const right = /^[\w]*/.exec(line.text.slice(i))![0];
  const word = left + right;
  if (!word) return null;
  const before = line.text.slice(0, i - left.length);
  if (v && /\bcontext\.args\.$/.test(before)) {
    const a = argumentsFor(doc.toString(), v).find((x) => x.name === word) ?? argumentsFor("", v).find((x) => x.name === word);
    return a ? `context.args.${a.name}: ${a.type} — argument of ${a.tools.join(", ")}. Optional: test with \`context.args has ${a.name}\` first.` : `No approved tool declares an argument "${word}".`;
  }
  return KEYWORD_HELP[word] ?? null;
}

/** The validator's issues (1-based line and column) as CodeMirror diagnostics over the word at each position. */
export function toDiagnostics(doc: Text, issues: CedarIssue[] | undefined): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues ?? []) {
    const message = issue.help ? `${issue.message} (${issue.help})` : issue.message;
    if (!issue.line || issue.line > doc.lines) {
      out.push({ from: 0, to: Math.min(doc.length, doc.line(1).length), severity: "error", message });
      continue;
    }
    const line = doc.line(issue.line);
    const from = Math.min(line.to, line.from + Math.max(0, (issue.column ?? 1) - 1));
    const word = /^[\w"]+|^\S/.exec(line.text.slice(from - line.from))?.[0] ?? "";
    out.push({ from, to: Math.min(line.to, from + Math.max(1, word.length)), severity: "error", message });
  }
  return out;
}
