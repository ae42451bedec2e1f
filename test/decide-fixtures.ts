import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import type { BundleContent } from "@/lib/enforcement/bundle";
import type { DecidePrincipal } from "@/lib/enforcement/decide";
import { toolHash } from "@/lib/enforcement/tool-hash";

/** A tool definition as an upstream lists it; its approved hash is the real toolHash, so listFilter keeps it. */
export function toolDef(name: string, properties: Record<string, unknown>) {
  return { name, title: null, description: name, inputSchema: { type: "object", properties }, annotations: {} };
}

export type ToolSpec = { name: string; properties: Record<string, unknown> };
export type ServerSpec = { id: string; tenantIds: string[]; tools: ToolSpec[]; mapping?: Record<string, string[]> };

/** A registry snapshot of a few servers, with real tool hashes (ready for compileBundle). */
export function snapshotOf(servers: ServerSpec[], policies: RegistrySnapshot["policies"] = [], live?: RegistrySnapshot["live"]): RegistrySnapshot {
  return {
    servers: servers.map((s) => ({
      id: s.id,
      name: s.id,
      tenantId: s.tenantIds[0]!,
      tenantIds: s.tenantIds,
      resourceUri: `https://mcp.example.com/${s.id}`,
      upstreamUrl: "http://127.0.0.1:9/mcp",
      scopes: Object.keys(s.mapping ?? {}),
      issuers: [],
      trust: [],
      prm: { resource: `https://mcp.example.com/${s.id}`, authorization_servers: [], scopes_supported: Object.keys(s.mapping ?? {}), bearer_methods_supported: ["header"] },
      mapping: s.mapping ?? {},
      tools: s.tools.map((t) => {
        const d = toolDef(t.name, t.properties);
        return { name: t.name, risk: "low" as const, blocked: false, approved: { hash: toolHash(d), title: null, description: d.description, annotations: {}, inputSchema: d.inputSchema } };
      }),
    })) as unknown as RegistrySnapshot["servers"],
    policies,
    tests: [],
    ...(live ? { live } : {}),
  };
}

export function compileOf(snap: RegistrySnapshot) {
  return compileBundle(snap, { fleetId: "flt_t", revision: 1, parentRevision: null, createdAt: "2026-01-01T00:00:00.000Z" });
}

export function contentOf(snap: RegistrySnapshot): BundleContent {
  const r = compileOf(snap);
  if (r.issues.length) throw new Error(`compile issues: ${r.issues.map((i) => i.message).join("; ")}`);
  return r.content;
}

export const principal = (over: Partial<DecidePrincipal> = {}): DecidePrincipal => ({
  issuer: "https://as.example.com",
  tenantId: "ten_a",
  user: "alice",
  client: "cli",
  scopes: [],
  groups: [],
  actors: [],
  iat: Date.parse("2026-11-25T11:00:00Z") / 1000,
  exp: Date.parse("2026-11-25T13:00:00Z") / 1000,
  ...over,
});

export const policy = (id: string, tenantId: string, serverId: string, cedar: string): RegistrySnapshot["policies"][number] => ({
  id,
  tenantId,
  serverId,
  name: id,
  kind: "cedar",
  cedar,
  enabled: true,
});
