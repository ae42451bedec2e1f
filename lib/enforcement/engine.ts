import type { BundleContent, BundleTool } from "./bundle";
import { cedar } from "./cedar";
import { argumentTypes, toolUid, type ArgType, type CedarAction } from "./model";

/** One request to decide: who, through which client, calls what, with which arguments. */
export interface DecisionRequest {
  action: CedarAction;
  serverId: string;
  tool: string;
  tenantId: string;
  user: string;
  groups?: string[];
  client: string;
  scopes: string[];
  args?: Record<string, unknown>;
  delegation?: { actors: string[] };
  time?: Date;
  ip?: string;
  token?: { iss: string; iat: number; exp: number };
}

export interface DecisionResult {
  decision: "allow" | "deny";
  /** Why, in words an admin can read (never internals of the token). */
  reason: string;
  /** Policy ids that determined the answer (the permits that allowed, or the forbids that denied). */
  determining: string[];
  /** Policy ids that failed to evaluate; any error denies. */
  errors: string[];
}

const deny = (reason: string, extra: Partial<DecisionResult> = {}): DecisionResult => ({ decision: "deny", reason, determining: [], errors: [], ...extra });

let engines = 0;

/**
 * The decision engine for one verified bundle. Policies are parsed once per
 * (server, tenant, tool) slice, on first use (cedar-wasm `preparsePolicySet`):
 * a decision evaluates only the policies that can apply to its tool, and
 * converts only the request's own entities and context. Slicing is sound
 * because the compiler confines every policy to its server and tenant and
 * records the tools it can match. Default deny, and fail closed: an unknown
 * server, tenant or tool, an argument of the wrong type, or any policy
 * evaluation error denies.
 */
export class PolicyEngine {
  private readonly id: string;
  private readonly slices = new Map<string, string>();
  private readonly servers: Map<string, BundleContent["servers"][number]>;
  private readonly tools: Map<string, BundleTool>;
  private readonly argTypes: Record<string, ArgType>;
  private readonly staticEntities: Map<string, BundleContent["cedar"]["entities"][number]>;

  constructor(readonly bundle: BundleContent) {
    this.id = `bundle-${bundle.manifest.fleetId}-${bundle.manifest.revision}-${++engines}`;
    // Parse everything once up front: a bundle that does not parse is refused here, not at the first call.
    const parsed = cedar.checkParsePolicySet({ staticPolicies: bundle.cedar.policies });
    if (parsed.type !== "success") throw new Error(`policy set does not parse: ${parsed.errors.map((e) => e.message).join("; ")}`);
    this.servers = new Map(bundle.servers.map((s) => [s.id, s]));
    this.tools = new Map(bundle.catalogue.map((t) => [`${t.serverId}/${t.name}`, t]));
    this.argTypes = argumentTypes(bundle.catalogue).types;
    this.staticEntities = new Map(bundle.cedar.entities.map((e) => [`${e.uid.type}::${e.uid.id}`, e]));
  }

  /** The preparsed policy set for one (server, tenant, tool), built on first use. */
  private slice(serverId: string, tenantId: string, tool: string): string {
    const key = `${serverId}\u0000${tenantId}\u0000${tool}`;
    let id = this.slices.get(key);
    if (id) return id;
    const policies: Record<string, string> = {};
    for (const [pid, text] of Object.entries(this.bundle.cedar.policies)) {
      const m = this.bundle.policies[pid];
      // Unknown metadata: keep the policy (never drop a forbid by accident).
      if (m && (m.serverId !== serverId || (m.tenantId !== null && m.tenantId !== tenantId) || (m.tools && !m.tools.includes(tool)))) continue;
      policies[pid] = text;
    }
    id = `${this.id}-${this.slices.size}`;
    const parsed = cedar.preparsePolicySet(id, { staticPolicies: policies });
    if (parsed.type !== "success") throw new Error(`policy set does not parse: ${parsed.errors.map((e) => e.message).join("; ")}`);
    this.slices.set(key, id);
    return id;
  }

  /** The approved catalogue entry of a tool, if the bundle has it. */
  tool(serverId: string, name: string): BundleTool | undefined {
    return this.tools.get(`${serverId}/${name}`);
  }

  decide(req: DecisionRequest): DecisionResult {
    const server = this.servers.get(req.serverId);
    if (!server) return deny("unknown server");
    if (!server.tenantIds.includes(req.tenantId)) return deny("this tenant may not use this server");
    const tool = this.tools.get(`${req.serverId}/${req.tool}`);
    if (!tool) return deny("the tool is not in the approved catalogue");

    const args: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(req.args ?? {})) {
      const type = this.argTypes[name];
      // Not addressable by any policy, or explicitly absent.
      if (!type || value === null) continue;
      const converted = convert(value, type);
      if (converted === undefined) return deny(`argument "${name}" does not have the type policies expect (${type})`);
      args[name] = converted;
    }
    const now = req.time ?? new Date();
    const tenant = { type: "Tenant", id: req.tenantId };
    const groups = (req.groups ?? []).map((g) => ({ type: "Group", id: g }));
    const resource = toolUid(req.serverId, req.tool);
    const entities = [
      { uid: { type: "User", id: req.user }, attrs: {}, parents: [tenant, ...groups] },
      ...groups.map((g) => ({ uid: g, attrs: {}, parents: [tenant] })),
      this.staticEntities.get(`Tool::${resource.id}`)!,
      this.staticEntities.get(`Server::${req.serverId}`)!,
    ];
    const answer = cedar.statefulIsAuthorized({
      principal: { type: "User", id: req.user },
      action: { type: "Action", id: req.action },
      resource,
      context: {
        args: args as never,
        scopes: req.scopes,
        client: req.client,
        tenant: req.tenantId,
        delegation: { actors: req.delegation?.actors ?? [], depth: req.delegation?.actors.length ?? 0 },
        time: { epoch: Math.floor(now.getTime() / 1000), hour: now.getUTCHours(), weekday: now.getUTCDay() },
        network: req.ip ? { ip: req.ip } : {},
        token: req.token ?? { iss: "", iat: 0, exp: 0 },
      },
      preparsedPolicySetId: this.slice(req.serverId, req.tenantId, req.tool),
      entities: entities as never,
    });
    if (answer.type !== "success") return deny("the request could not be evaluated");
    const { decision, diagnostics } = answer.response;
    const errors = diagnostics.errors.map((e) => e.policyId);
    if (errors.length) return deny("a policy failed to evaluate", { errors, determining: diagnostics.reason });
    if (decision === "allow") return { decision: "allow", reason: "allowed by policy", determining: diagnostics.reason, errors: [] };
    return deny(diagnostics.reason.length ? "denied by policy" : "no policy allows this call", { determining: diagnostics.reason });
  }
}

function convert(value: unknown, type: ArgType): unknown {
  switch (type) {
    case "String":
      return typeof value === "string" ? value : undefined;
    case "Bool":
      return typeof value === "boolean" ? value : undefined;
    case "Long":
      return typeof value === "number" && Number.isSafeInteger(value) ? value : undefined;
    case "SetString":
      return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined;
  }
}
