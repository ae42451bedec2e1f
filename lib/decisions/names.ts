import "server-only";
import { sql, type SQL } from "drizzle-orm";
import type { Ctx } from "@/lib/context";
import { readableTenants } from "./query";
import { execRows, tenantCond } from "./rollups";

/** What a decision names by id. */
export type NameKind = "tenant" | "server" | "fleet" | "agent" | "policy";
export const NAME_KINDS: readonly NameKind[] = ["tenant", "server", "fleet", "agent", "policy"];

/** At most this many ids of each kind are looked up per call (a page shows at most 200 rows). */
export const NAMES_MAX_PER_KIND = 500;

export type NameRefs = Partial<Record<NameKind, Iterable<string | null | undefined>>>;
/** id → name, per kind. An id missing from its map is unknown or not readable by the viewer: show the id. */
export type Names = Record<NameKind, Record<string, string>>;

export const emptyNames = (): Names => ({ tenant: {}, server: {}, fleet: {}, agent: {}, policy: {} });

export const ID_RE = /^[\w.:-]{1,100}$/;

export function bounded(xs: Iterable<string | null | undefined> | undefined): string[] {
  const out = new Set<string>();
  for (const x of xs ?? []) {
    if (typeof x === "string" && ID_RE.test(x)) out.add(x);
    if (out.size >= NAMES_MAX_PER_KIND) break;
  }
  return [...out];
}

export const inList = (col: SQL, ids: string[]) =>
  sql`${col} in (${sql.join(
    ids.map((i) => sql`${i}`),
    sql`, `,
  )})`;

/** A row of a names query: one object's name, by kind. */
export type NameRow = { kind: string; id: string; name: string };

/**
 * The parts (one indexed lookup per kind, each bounded by NAMES_MAX_PER_KIND
 * ids) of the names query for `tenants` (null = every tenant), and how to
 * read its rows back. Pages that name more kinds (the admin trail,
 * lib/trail/names.ts) add their own parts to the same one UNION ALL query;
 * their rows carry kinds of their own, which `collect` ignores.
 */
export function namesQuery(tenants: string[] | null, refs: NameRefs): { parts: SQL[]; collect: (rows: NameRow[]) => Names } {
  const ids = Object.fromEntries(NAME_KINDS.map((k) => [k, bounded(refs[k])])) as Record<NameKind, string[]>;
  const fleetOk = (fleetCol: SQL) =>
    tenants === null ? sql`true` : sql`exists (select 1 from fleet_servers fs join servers s on s.id = fs.server_id where fs.fleet_id = ${fleetCol} and ${tenantCond(sql`s.tenant_id`, tenants)})`;
  const parts: SQL[] = [];
  if (ids.tenant.length) parts.push(sql`select 'tenant' as kind, t.id, t.name from tenants t where ${inList(sql`t.id`, ids.tenant)} and ${tenantCond(sql`t.id`, tenants)}`);
  if (ids.server.length) parts.push(sql`select 'server' as kind, s.id, s.name from servers s where ${inList(sql`s.id`, ids.server)} and ${tenantCond(sql`s.tenant_id`, tenants)}`);
  if (ids.policy.length) parts.push(sql`select 'policy' as kind, p.id, p.name from policies p where ${inList(sql`p.id`, ids.policy)} and ${tenantCond(sql`p.tenant_id`, tenants)}`);
  // Scope rules the bundle compiler generates (lib/bundles/compile.ts: id `scope:<server>:<scope>`, name `scope <scope>`)
  // are in no table: named when their server is readable.
  const scopeRules = ids.policy.map((id) => /^scope:([^:]+):(.+)$/.exec(id)).filter((m): m is RegExpExecArray => m !== null);
  const scopeServers = [...new Set(scopeRules.map((m) => m[1]!))];
  if (scopeServers.length) parts.push(sql`select 'scope-server' as kind, s.id, s.name from servers s where ${inList(sql`s.id`, scopeServers)} and ${tenantCond(sql`s.tenant_id`, tenants)}`);
  if (ids.fleet.length) parts.push(sql`select 'fleet' as kind, f.id, f.name from fleets f where ${inList(sql`f.id`, ids.fleet)} and ${fleetOk(sql`f.id`)}`);
  if (ids.agent.length) parts.push(sql`select 'agent' as kind, a.id, a.name from agents a where ${inList(sql`a.id`, ids.agent)} and ${fleetOk(sql`a.fleet_id`)}`);
  const collect = (rows: NameRow[]) => {
    const names = emptyNames();
    const readableScopeServers = new Set<string>();
    for (const r of rows) {
      if (r.kind === "scope-server") readableScopeServers.add(r.id);
      else if (r.name && (NAME_KINDS as readonly string[]).includes(r.kind)) names[r.kind as NameKind][r.id] = r.name;
    }
    for (const m of scopeRules) if (readableScopeServers.has(m[1]!)) names.policy[m[0]] = `scope ${m[2]}`;
    return names;
  };
  return { parts, collect };
}

/**
 * The names of the objects a page of decisions refers to, in one query
 * (namesQuery). The ids are only looked up: the viewer's tenants decide what
 * comes back. Tenants, servers and policies must belong to a tenant the
 * viewer may read decisions of; fleets and agents must serve a server of
 * such a tenant (fleets have no tenant). Owners and global auditors see
 * every name.
 */
export async function resolveNames(ctx: Ctx, refs: NameRefs): Promise<Names> {
  const tenants = readableTenants(ctx, undefined);
  if (tenants && tenants.length === 0) return emptyNames();
  const { parts, collect } = namesQuery(tenants, refs);
  if (parts.length === 0) return emptyNames();
  return collect(await execRows<NameRow>(ctx.db, sql.join(parts, sql` union all `)));
}

/** Dashboard addresses of the objects (the UI and the CSV export link with them). */
export const linkOf: Record<Exclude<NameKind, "agent">, (id: string) => string> = {
  tenant: (id) => `/tenants/${encodeURIComponent(id)}`,
  server: (id) => `/servers/${encodeURIComponent(id)}`,
  fleet: (id) => `/fleets/${encodeURIComponent(id)}`, // agents are listed on their fleet's page
  policy: (id) => `/policies/${encodeURIComponent(id)}`,
};

/** The names a list of decision rows needs. */
export function refsOfRows(rows: { tenantId: string | null; serverId: string; fleetId: string; agentId?: string | null; determining?: string[] | null }[]): NameRefs {
  return {
    tenant: rows.map((r) => r.tenantId),
    server: rows.map((r) => r.serverId),
    fleet: rows.map((r) => r.fleetId),
    agent: rows.map((r) => r.agentId),
    policy: rows.flatMap((r) => r.determining ?? []),
  };
}
