import type { RegistrySnapshot } from "@/lib/bundles/compile";
import { entryHash, promptInputSchema } from "@/lib/enforcement/catalogue-entry";
import { snapshotOf } from "./decide-fixtures";

// What the upstream lists (and the catalogue approved).
export const resources = [
  { uri: "file:///docs/handbook.md", name: "handbook", title: "Handbook", mimeType: "text/markdown" },
  { uri: "file:///secrets/payroll.csv", name: "payroll", mimeType: "text/csv" },
];
export const templates = [{ uriTemplate: "tickets://{project}/{id}", name: "ticket", description: "One ticket" }];
export const prompts = [
  { name: "summarize", description: "Summarize a ticket", arguments: [{ name: "ticket", required: true }, { name: "tone" }] },
  { name: "escalate", arguments: [{ name: "ticket" }] },
];

type Entry = RegistrySnapshot["servers"][number]["tools"][number];
const approvedEntries = (opts: { unapproved?: string[]; blocked?: string[] } = {}): Entry[] => [
  ...resources.map((r) => ({
    kind: "resource" as const,
    name: r.uri,
    risk: "low" as const,
    blocked: opts.blocked?.includes(r.uri) ?? false,
    approved: opts.unapproved?.includes(r.uri)
      ? null
      : { hash: entryHash("resource", r), title: r.title ?? null, description: "", annotations: {}, inputSchema: { type: "object" }, label: r.name, mimeType: r.mimeType },
  })),
  ...templates.map((t) => ({
    kind: "resourceTemplate" as const,
    name: t.uriTemplate,
    risk: "medium" as const,
    blocked: false,
    approved: { hash: entryHash("resourceTemplate", t), title: null, description: t.description, annotations: {}, inputSchema: { type: "object" }, label: t.name, mimeType: null },
  })),
  ...prompts.map((p) => ({
    kind: "prompt" as const,
    name: p.name,
    risk: "low" as const,
    blocked: opts.blocked?.includes(p.name) ?? false,
    approved: opts.unapproved?.includes(p.name) ? null : { hash: entryHash("prompt", p), title: null, description: p.description ?? "", annotations: {}, inputSchema: promptInputSchema(p) },
  })),
];

/** srv_a (tenants ten_a and ten_b) with a tool, resources, a template and prompts; srv_b (ten_b only). */
export function snapshot(policies: RegistrySnapshot["policies"], opts: { unapproved?: string[]; blocked?: string[] } = {}): RegistrySnapshot {
  const snap = snapshotOf(
    [
      { id: "srv_a", tenantIds: ["ten_a", "ten_b"], tools: [{ name: "get_ticket", properties: { id: { type: "string" }, amount: { type: "integer" } } }], mapping: { "tickets:read": ["get_ticket"] } },
      { id: "srv_b", tenantIds: ["ten_b"], tools: [{ name: "summarize", properties: {} }] },
    ],
    policies,
  );
  snap.servers[0]!.tools.push(...approvedEntries(opts));
  return snap;
}
