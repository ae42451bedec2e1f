import type { SchemaJson } from "./cedar";

/**
 * The Cedar model every bundle uses. Entity ids:
 *   Tenant::"<tenant id>"   Server::"<server id>"   Tool::"<server id>/<tool name>"
 *   User::"<sub>"           Group::"<group>"        Action::"call_tool" | "list_tools"
 * Users and groups are built per request, in the request's tenant, so a
 * group name never reaches across tenants.
 */
export const actions = ["call_tool", "list_tools"] as const;
export type CedarAction = (typeof actions)[number];

export const toolUid = (serverId: string, tool: string) => ({ type: "Tool", id: `${serverId}/${tool}` });

/** The Cedar type an argument may have, derived from the tool's JSON Schema. */
export type ArgType = "String" | "Long" | "Bool" | "SetString";

export interface ToolForSchema {
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

const cedarType = (t: ArgType) => (t === "SetString" ? { type: "Set", element: { type: "String" } } : { type: t === "Bool" ? "Boolean" : t });

/** The Cedar schema (JSON form) for a bundle: entity types, actions and the request context. */
export function cedarSchema(argTypes: Record<string, ArgType>): SchemaJson<string> {
  const str = { type: "String" };
  const long = { type: "Long" };
  const context = {
    type: "Record",
    attributes: {
      args: {
        type: "Record",
        // Object.fromEntries defines own properties, so "__proto__" is an attribute like any other.
        attributes: Object.fromEntries(Object.keys(argTypes).sort().map((k) => [k, { ...cedarType(argTypes[k]!), required: false }])),
      },
      scopes: { type: "Set", element: str },
      client: str,
      tenant: str,
      delegation: { type: "Record", attributes: { actors: { type: "Set", element: str }, depth: long } },
      time: { type: "Record", attributes: { epoch: long, hour: long, weekday: long } },
      network: { type: "Record", attributes: { ip: { ...str, required: false } } },
      token: { type: "Record", attributes: { iss: str, iat: long, exp: long } },
    },
  };
  return {
    "": {
      entityTypes: {
        Tenant: {},
        Group: { memberOfTypes: ["Tenant"] },
        // A user id is `<issuer>#<subject>` (users are namespaced by issuer); `sub` and `iss` are its two
        // parts, so a rule can still name a subject from any issuer its tenant trusts (principal.sub).
        User: { memberOfTypes: ["Group", "Tenant"], shape: { type: "Record", attributes: { sub: str, iss: str } } },
        Server: { shape: { type: "Record", attributes: { name: str, resource: str } } },
        Tool: {
          memberOfTypes: ["Server"],
          shape: {
            type: "Record",
            attributes: {
              name: str,
              risk: str,
              readOnly: { type: "Boolean" },
              destructive: { type: "Boolean" },
              idempotent: { type: "Boolean" },
              openWorld: { type: "Boolean" },
            },
          },
        },
      },
      actions: Object.fromEntries(actions.map((a) => [a, { appliesTo: { principalTypes: ["User"], resourceTypes: ["Tool"], context } }])),
    },
  } as unknown as SchemaJson<string>;
}
