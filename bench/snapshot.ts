/**
 * The registry of the compile and decision benches: 10 servers of 100 tools, 2,000 rule policies over two tenants
 * (bench/decision.ts, bench/compile-first.ts).
 */
import type { PolicyRule } from "@/db/schema";
import type { RegistrySnapshot } from "@/lib/bundles/compile";
import { compileRule } from "@/lib/policy/rule";

export const SERVERS = 10;
export const TOOLS_PER_SERVER = 100;
export const POLICIES = 2000;

/** Policy `p` of the registry: its server (0-based), name and rule; its tenant is the second of two when p % 3 === 0. */
export function benchPolicy(p: number): { serverIndex: number; name: string; rule: PolicyRule } {
  const tool = `tool_${p % TOOLS_PER_SERVER}`;
  const rule: PolicyRule = {
    effect: p % 2 ? "forbid" : "permit",
    actions: ["call_tool"],
    tools: [tool],
    principals: { users: p % 5 === 0 ? [`user_${p % 50}`] : [], groups: p % 7 === 0 ? ["finance"] : [] },
    clients: p % 11 === 0 ? ["claude-desktop"] : [],
    conditions: [{ arg: "amount", op: p % 2 ? "gt" : "lte", value: 100 + (p % 900) }, ...(p % 4 === 0 ? [{ arg: "project" as const, op: "like" as const, value: "prod*" }] : [])],
  };
  return { serverIndex: p % SERVERS, name: `policy ${p}`, rule };
}

/** Tool `i` of a server: its risk, annotations and input schema. */
export function benchTool(i: number) {
  return {
    name: `tool_${i}`,
    risk: (["low", "medium", "high", "critical"] as const)[i % 4]!,
    annotations: { readOnlyHint: i % 3 === 0, destructiveHint: i % 10 === 0 },
    inputSchema: { type: "object", properties: { amount: { type: "integer" }, project: { type: "string" }, tags: { type: "array", items: { type: "string" } } } },
  };
}

/** The scope mapping of every server: read grants every third tool, write all of them. */
export const benchMapping = (names: string[]) => ({ read: names.filter((_, i) => i % 3 === 0), write: names });

export function snapshot(): RegistrySnapshot {
  const servers: RegistrySnapshot["servers"] = [];
  const policies: RegistrySnapshot["policies"] = [];
  for (let s = 0; s < SERVERS; s++) {
    const id = `srv_${s}`;
    const tools = Array.from({ length: TOOLS_PER_SERVER }, (_, i) => {
      const { name, risk, annotations, inputSchema } = benchTool(i);
      return { name, risk, blocked: false, approved: { hash: `sha256:${s}-${i}`, title: null, description: "", annotations, inputSchema } };
    });
    servers.push({
      id,
      name: `server ${s}`,
      tenantId: "ten_a",
      tenantIds: ["ten_a", "ten_b"],
      resourceUri: `https://mcp.bench.example/${s}`,
      upstreamUrl: "http://127.0.0.1:9/mcp",
      scopes: ["read", "write"],
      issuers: [],
      prm: { resource: `https://mcp.bench.example/${s}`, authorization_servers: [], scopes_supported: ["read", "write"], bearer_methods_supported: ["header"] },
      tools,
      mapping: benchMapping(tools.map((t) => t.name)),
    });
  }
  for (let p = 0; p < POLICIES; p++) {
    const { serverIndex, name, rule } = benchPolicy(p);
    const serverId = `srv_${serverIndex}`;
    policies.push({ id: `pol_${String(p).padStart(5, "0")}`, tenantId: p % 3 ? "ten_a" : "ten_b", serverId, name, kind: "rule", cedar: compileRule(rule, serverId, { name }), enabled: true });
  }
  return { servers, policies, tests: [] };
}
