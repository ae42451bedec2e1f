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
 * The argument attributes policies may test: the union of every tool's top-level
 * properties. A name with conflicting types across tools is left out (and
 * reported), since one record type serves all tools.
 */
export function argumentTypes(tools: ToolForSchema[]): { types: Record<string, ArgType>; conflicts: string[] } {
  const types: Record<string, ArgType> = {};
  const conflicts = new Set<string>();
  for (const t of tools) {
    const props = (t.inputSchema.properties ?? {}) as Record<string, unknown>;
    for (const [name, prop] of Object.entries(props)) {
      const ty = argTypeOf(prop);
      if (!ty || conflicts.has(name)) continue;
      if (types[name] && types[name] !== ty) {
        conflicts.add(name);
        delete types[name];
      } else types[name] = ty;
    }
  }
  return { types, conflicts: [...conflicts].sort() };
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
        attributes: Object.fromEntries(Object.entries(argTypes).sort().map(([k, v]) => [k, { ...cedarType(v), required: false }])),
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
        User: { memberOfTypes: ["Group", "Tenant"] },
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
