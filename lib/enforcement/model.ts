import type { SchemaJson } from "./cedar";
import { ENTITY_TYPE, templateVariables, type CatalogueKind } from "./catalogue-entry";

/**
 * The Cedar model every bundle uses. Entity ids:
 *   Tenant::"<tenant id>"   Server::"<server id>"   Tool::"<server id>/<tool name>"
 *   Resource::"<server id>/<uri>"   ResourceTemplate::"<server id>/<uri template>"
 *   Prompt::"<server id>/<prompt name>"
 *   User::"<sub>"           Group::"<group>"
 * Actions and what they apply to:
 *   call_tool, list_tools                 Tool
 *   read_resource                         Resource, ResourceTemplate (a URI read through an approved template)
 *   list_resources                        Resource
 *   list_resource_templates               ResourceTemplate
 *   get_prompt, list_prompts              Prompt
 *   complete                              Prompt, ResourceTemplate (completion/complete of its ref)
 * Users and groups are built per request, in the request's tenant, so a
 * group name never reaches across tenants.
 */
export const actions = ["call_tool", "list_tools", "read_resource", "list_resources", "list_resource_templates", "get_prompt", "list_prompts", "complete"] as const;
export type CedarAction = (typeof actions)[number];

/** The entity types each action applies to. */
export const ACTION_TARGETS: Record<CedarAction, readonly CatalogueKind[]> = {
  call_tool: ["tool"],
  list_tools: ["tool"],
  read_resource: ["resource", "resourceTemplate"],
  list_resources: ["resource"],
  list_resource_templates: ["resourceTemplate"],
  get_prompt: ["prompt"],
  list_prompts: ["prompt"],
  complete: ["prompt", "resourceTemplate"],
};

/** Actions whose `context.args` carries arguments: a tool's (call_tool) or strings (a prompt's arguments, a template's variables). */
const STRING_ARG_ACTIONS: ReadonlySet<CedarAction> = new Set(["read_resource", "get_prompt", "complete"]);

export const toolUid = (serverId: string, tool: string) => ({ type: "Tool", id: `${serverId}/${tool}` });
/** The Cedar entity of a catalogue entry. */
export const entryUid = (kind: CatalogueKind, serverId: string, key: string) => ({ type: ENTITY_TYPE[kind], id: `${serverId}/${key}` });

/** An approved catalogue entry as the model reads it (BundleTool fits). */
export interface EntryForModel {
  kind?: CatalogueKind;
  name: string;
  label?: string;
  mimeType?: string | null;
  risk: string;
  annotations: Record<string, unknown>;
  inputSchema: Record<string, unknown>;
}

/**
 * The attributes of an entry's Cedar entity. Every kind has the tool
 * attributes (name, risk and the four hints) so a policy written for any
 * resource type still validates; resources, templates and prompts are
 * read-only by nature (readOnly true, destructive false, idempotent true,
 * openWorld false). Resources and templates add their URI (template), display
 * name and MIME type; prompts their argument names.
 */
export function entityAttrs(e: EntryForModel): Record<string, unknown> {
  const kind = e.kind ?? "tool";
  const a = e.annotations ?? {};
  if (kind === "tool")
    return { name: e.name, risk: e.risk, readOnly: a.readOnlyHint === true, destructive: a.destructiveHint === true, idempotent: a.idempotentHint === true, openWorld: a.openWorldHint === true };
  const base = { name: e.name, risk: e.risk, readOnly: true, destructive: false, idempotent: true, openWorld: false };
  if (kind === "prompt") {
    const props = e.inputSchema?.properties;
    return { ...base, arguments: props && typeof props === "object" ? Object.keys(props).sort() : [] };
  }
  return { ...base, [kind === "resource" ? "uri" : "uriTemplate"]: e.name, label: e.label ?? "", mimeType: e.mimeType ?? "" };
}

/** The Cedar type an argument may have, derived from the tool's JSON Schema. */
export type ArgType = "String" | "Long" | "Bool" | "SetString";

export interface ToolForSchema {
  /** Entries of other kinds are skipped: only tools' arguments are typed from their schema. */
  kind?: CatalogueKind;
  inputSchema: Record<string, unknown>;
}

/** Maps one JSON Schema property to a Cedar type, or null when Cedar cannot express it. */
export function argTypeOf(prop: unknown): ArgType | null {
  if (!prop || typeof prop !== "object") return null;
  const p = prop as { type?: unknown; items?: { type?: unknown }; enum?: unknown[] };
  const t = Array.isArray(p.type) ? p.type.filter((x) => x !== "null") : [p.type];
  if (t.length !== 1) return null;
  switch (t[0]) {
    case "string":
      return "String";
    case "integer":
    case "number":
      return "Long";
    case "boolean":
      return "Bool";
    case "array":
      return p.items?.type === "string" ? "SetString" : null;
    default:
      return null;
  }
}

/**
 * The argument attributes policies may test: the union of the given tools'
 * top-level properties (call it with one server's tools: policies are confined
 * to their server, so argument types are per server, see argumentTypesByServer).
 * A name with conflicting types across these tools is left out (and reported),
 * since one record type serves all of them. The result has a null prototype:
 * names come from upstream schemas, and `constructor` or `__proto__` are
 * ordinary names here.
 */
export function argumentTypes(tools: ToolForSchema[]): { types: Record<string, ArgType>; conflicts: string[] } {
  const found = new Map<string, ArgType>();
  const conflicts = new Set<string>();
  for (const t of tools) {
    if (t.kind !== undefined && t.kind !== "tool") continue;
    const raw = t.inputSchema?.properties;
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) continue;
    const props = raw as Record<string, unknown>;
    for (const name of Object.keys(props)) {
      const ty = argTypeOf(props[name]);
      if (!ty || conflicts.has(name)) continue;
      const prev = found.get(name);
      if (prev && prev !== ty) {
        conflicts.add(name);
        found.delete(name);
      } else found.set(name, ty);
    }
  }
  const types = Object.create(null) as Record<string, ArgType>;
  for (const [name, ty] of [...found].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) Object.defineProperty(types, name, { value: ty, enumerable: true, configurable: true, writable: true });
  return { types, conflicts: [...conflicts].sort() };
}

/** Argument types per server (server id → name → type), from a bundle's catalogue. */
export function argumentTypesByServer(catalogue: (ToolForSchema & { serverId: string })[]): Map<string, { types: Map<string, ArgType>; conflicts: string[] }> {
  const byServer = new Map<string, ToolForSchema[]>();
  for (const t of catalogue) {
    if (t.kind !== undefined && t.kind !== "tool") continue;
    const list = byServer.get(t.serverId);
    if (list) list.push(t);
    else byServer.set(t.serverId, [t]);
  }
  const out = new Map<string, { types: Map<string, ArgType>; conflicts: string[] }>();
  for (const [serverId, tools] of byServer) {
    const a = argumentTypes(tools);
    out.set(serverId, { types: new Map(Object.entries(a.types)), conflicts: a.conflicts });
  }
  return out;
}

/**
 * Per server: the string arguments of its prompts (declared arguments) and
 * resource templates (URI template variables), which `read_resource`,
 * `get_prompt` and `complete` carry in `context.args`. A name its tools type
 * otherwise (not String) is left out, so a policy written for the tools'
 * arguments keeps validating against every action.
 */
export function stringArgumentsByServer(catalogue: (EntryForModel & { serverId: string })[], toolTypes: Map<string, { types: Map<string, ArgType> }>): Map<string, string[]> {
  const found = new Map<string, Set<string>>();
  for (const e of catalogue) {
    const kind = e.kind ?? "tool";
    if (kind !== "prompt" && kind !== "resourceTemplate") continue;
    let set = found.get(e.serverId);
    if (!set) found.set(e.serverId, (set = new Set()));
    const props = e.inputSchema?.properties;
    const names = kind === "prompt" ? (props && typeof props === "object" && !Array.isArray(props) ? Object.keys(props) : []) : templateVariables(e.name);
    for (const n of names) set.add(n);
  }
  const out = new Map<string, string[]>();
  for (const [serverId, set] of found) {
    const typed = toolTypes.get(serverId)?.types;
    out.set(
      serverId,
      [...set]
        .filter((n) => {
          const t = typed?.get(n);
          return t === undefined || t === "String";
        })
        .sort(),
    );
  }
  return out;
}

const cedarType = (t: ArgType) => (t === "SetString" ? { type: "Set", element: { type: "String" } } : { type: t === "Bool" ? "Boolean" : t });

/**
 * The Cedar schema (JSON form) for a bundle: entity types, actions and the
 * request context. `argTypes` types the tools' arguments (call_tool,
 * list_tools); `stringArgs` names the string arguments of prompts and
 * templates (read_resource, get_prompt, complete); list actions of the other
 * kinds have no arguments.
 */
export function cedarSchema(argTypes: Record<string, ArgType>, stringArgs: readonly string[] = []): SchemaJson<string> {
  const str = { type: "String" };
  const long = { type: "Long" };
  const contextWith = (args: Record<string, unknown>) => ({
    type: "Record",
    attributes: {
      args: { type: "Record", attributes: args },
      scopes: { type: "Set", element: str },
      client: str,
      tenant: str,
      delegation: { type: "Record", attributes: { actors: { type: "Set", element: str }, depth: long } },
      time: { type: "Record", attributes: { epoch: long, hour: long, weekday: long } },
      network: { type: "Record", attributes: { ip: { ...str, required: false } } },
      token: { type: "Record", attributes: { iss: str, iat: long, exp: long } },
    },
  });
  // Object.fromEntries defines own properties, so "__proto__" is an attribute like any other.
  const toolContext = contextWith(
    Object.fromEntries(
      Object.keys(argTypes)
        .sort()
        .map((k) => [k, { ...cedarType(argTypes[k]!), required: false }]),
    ),
  );
  const stringContext = contextWith(Object.fromEntries([...stringArgs].sort().map((k) => [k, { ...str, required: false }])));
  const noArgs = contextWith({});
  const hints = { name: str, risk: str, readOnly: { type: "Boolean" }, destructive: { type: "Boolean" }, idempotent: { type: "Boolean" }, openWorld: { type: "Boolean" } };
  const contextOf = (a: CedarAction) => (a === "call_tool" || a === "list_tools" ? toolContext : STRING_ARG_ACTIONS.has(a) ? stringContext : noArgs);
  return {
    "": {
      entityTypes: {
        Tenant: {},
        Group: { memberOfTypes: ["Tenant"] },
        // A user id is `<issuer>#<subject>` (users are namespaced by issuer); `sub` and `iss` are its two
        // parts, so a rule can still name a subject from any issuer its tenant trusts (principal.sub).
        User: { memberOfTypes: ["Group", "Tenant"], shape: { type: "Record", attributes: { sub: str, iss: str } } },
        Server: { shape: { type: "Record", attributes: { name: str, resource: str } } },
        Tool: { memberOfTypes: ["Server"], shape: { type: "Record", attributes: hints } },
        Resource: { memberOfTypes: ["Server"], shape: { type: "Record", attributes: { ...hints, uri: str, label: str, mimeType: str } } },
        ResourceTemplate: { memberOfTypes: ["Server"], shape: { type: "Record", attributes: { ...hints, uriTemplate: str, label: str, mimeType: str } } },
        Prompt: { memberOfTypes: ["Server"], shape: { type: "Record", attributes: { ...hints, arguments: { type: "Set", element: str } } } },
      },
      actions: Object.fromEntries(actions.map((a) => [a, { appliesTo: { principalTypes: ["User"], resourceTypes: ACTION_TARGETS[a].map((k) => ENTITY_TYPE[k]), context: contextOf(a) } }])),
    },
  } as unknown as SchemaJson<string>;
}

/**
 * The Cedar schema one server's policies are validated against, from its
 * approved catalogue entries (what the compiler, the editor's check and the
 * schema endpoint use): the tools' argument types, the string arguments of
 * its prompts and templates, and the schema built from both.
 */
export function serverSchemaOf(approved: (Pick<EntryForModel, "kind" | "name" | "inputSchema"> & { risk?: string; annotations?: Record<string, unknown> })[]): {
  schema: SchemaJson<string>;
  types: Record<string, ArgType>;
  conflicts: string[];
  stringArgs: string[];
} {
  const { types, conflicts } = argumentTypes(approved);
  const entries = approved.map((e) => ({ ...e, serverId: "", risk: e.risk ?? "", annotations: e.annotations ?? {} }));
  const stringArgs = stringArgumentsByServer(entries, new Map([["", { types: new Map(Object.entries(types)) }]])).get("") ?? [];
  return { schema: cedarSchema(types, stringArgs), types, conflicts, stringArgs };
}
