import "server-only";
import { sql, type SQL } from "drizzle-orm";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { bounded, inList, linkOf, namesQuery, type NameRow } from "@/lib/decisions/names";
import { execRows, tenantCond } from "@/lib/decisions/rollups";

/** A trail target's name and dashboard address (null: named, but no page to open). */
export interface TargetName {
  name: string;
  href: string | null;
}
/** targetType → targetId → name. A target missing here is unknown, deleted, or not readable by the viewer: show its id. */
export type TargetNames = Record<string, Record<string, TargetName>>;

/** The trail's target types that have a name, and the name kind each one is looked up as. */
const DECISION_KINDS = { tenant: "tenant", server: "server", fleet: "fleet", agent: "agent", policy: "policy" } as const;
const OWN_KINDS = ["vault_entry", "grant", "tool", "oauth_client", "user"] as const;

const enc = encodeURIComponent;

/**
 * The names of the targets of a page of trail events, in ONE query: the
 * decision log's names query (lib/decisions/names.ts: tenants, servers,
 * policies, fleets, agents) plus the trail's own kinds (vault entries,
 * grants, tools, OAuth clients, users), each lookup bounded by
 * NAMES_MAX_PER_KIND ids and scoped to the viewer's tenants: an object of a
 * tenant the viewer is not a member of is never named, even when an event
 * the viewer sees points at it. Owners and global auditors see every name.
 */
export async function resolveTargetNames(ctx: Ctx, events: { targetType: string; targetId: string }[]): Promise<TargetNames> {
  const out: TargetNames = {};
  const tenants = seesAllTenants(ctx.actor) ? null : [...ctx.actor.tenantRoles.keys()];
  if (tenants && tenants.length === 0) return out;
  const idsOf = (type: string) => bounded(events.filter((e) => e.targetType === type).map((e) => e.targetId));

  const decisions = namesQuery(tenants, Object.fromEntries(Object.entries(DECISION_KINDS).map(([type, kind]) => [kind, idsOf(type)])));
  const parts: SQL[] = [...decisions.parts];
  const own = Object.fromEntries(OWN_KINDS.map((k) => [k, idsOf(k)])) as Record<(typeof OWN_KINDS)[number], string[]>;
  const ten = (col: SQL) => tenantCond(col, tenants);
  // A vault entry without a tenant serves every tenant of its server: readable with the server's tenant.
  if (own.vault_entry.length)
    parts.push(
      sql`select 'vault_entry' as kind, v.id, v.name as name from vault_entries v where ${inList(sql`v.id`, own.vault_entry)} and ${ten(sql`coalesce(v.tenant_id, (select s.tenant_id from servers s where s.id = v.server_id))`)}`,
    );
  if (own.grant.length) parts.push(sql`select 'grant' as kind, g.id, g.user_id || ' · ' || g.client_id as name from grants g where ${inList(sql`g.id`, own.grant)} and ${ten(sql`g.tenant_id`)}`);
  if (own.grant.length) parts.push(sql`select 'grant-user' as kind, g.id, g.user_id as name from grants g where ${inList(sql`g.id`, own.grant)} and ${ten(sql`g.tenant_id`)}`);
  if (own.tool.length) {
    parts.push(sql`select 'tool' as kind, t.id, t.name as name from tools t join servers s on s.id = t.server_id where ${inList(sql`t.id`, own.tool)} and ${ten(sql`s.tenant_id`)}`);
    parts.push(sql`select 'tool-server' as kind, t.id, t.server_id as name from tools t join servers s on s.id = t.server_id where ${inList(sql`t.id`, own.tool)} and ${ten(sql`s.tenant_id`)}`);
  }
  if (own.oauth_client.length)
    parts.push(
      sql`select 'oauth_client' as kind, c.id, coalesce(nullif(c.name, ''), c.client_id) as name from oauth_clients c where ${inList(sql`c.id`, own.oauth_client)} and ${ten(sql`c.tenant_id`)}`,
      sql`select 'oauth_client-at' as kind, c.id, c.tenant_id || ' ' || c.client_id as name from oauth_clients c where ${inList(sql`c.id`, own.oauth_client)} and ${ten(sql`c.tenant_id`)}`,
    );
  // A user's e-mail: for a tenant admin or auditor, only of members of their tenants.
  if (own.user.length)
    parts.push(
      sql`select 'user' as kind, u.id, u.email as name from users u where ${inList(sql`u.id`, own.user)} and ${
        tenants === null ? sql`true` : sql`exists (select 1 from memberships m where m.user_id = u.id and ${ten(sql`m.tenant_id`)})`
      }`,
    );
  // An agent opens on its fleet's page.
  if (idsOf("agent").length)
    parts.push(
      sql`select 'agent-fleet' as kind, a.id, a.fleet_id as name from agents a where ${inList(sql`a.id`, idsOf("agent"))} and ${
        tenants === null ? sql`true` : sql`exists (select 1 from fleet_servers fs join servers s on s.id = fs.server_id where fs.fleet_id = a.fleet_id and ${ten(sql`s.tenant_id`)})`
      }`,
    );
  if (parts.length === 0) return out;

  const rows = await execRows<NameRow>(ctx.db, sql.join(parts, sql` union all `));
  const named = decisions.collect(rows);
  const put = (type: string, id: string, name: string, href: string | null) => ((out[type] ??= {})[id] = { name, href });
  for (const [id, name] of Object.entries(named.tenant)) put("tenant", id, name, linkOf.tenant(id));
  for (const [id, name] of Object.entries(named.server)) put("server", id, name, linkOf.server(id));
  for (const [id, name] of Object.entries(named.fleet)) put("fleet", id, name, linkOf.fleet(id));
  for (const [id, name] of Object.entries(named.policy)) if (!id.startsWith("scope:")) put("policy", id, name, linkOf.policy(id));
  const extra = (kind: string) => new Map(rows.filter((r) => r.kind === kind).map((r) => [r.id, r.name]));
  const agentFleet = extra("agent-fleet");
  for (const [id, name] of Object.entries(named.agent)) put("agent", id, name, agentFleet.has(id) ? linkOf.fleet(agentFleet.get(id)!) : null);
  const grantUser = extra("grant-user");
  const toolServer = extra("tool-server");
  const clientAt = extra("oauth_client-at");
  const clientHref = (id: string) => {
    const v = clientAt.get(id);
    if (!v) return null;
    const i = v.indexOf(" ");
    return `/grants?tab=clients&tenant=${enc(v.slice(0, i))}&client=${enc(v.slice(i + 1))}`;
  };
  for (const r of rows) {
    if (!r.name) continue;
    if (r.kind === "vault_entry") put("vault_entry", r.id, r.name, `/vault/${enc(r.id)}`);
    else if (r.kind === "grant") put("grant", r.id, r.name, grantUser.has(r.id) ? `/grants/user?id=${enc(grantUser.get(r.id)!)}` : null);
    else if (r.kind === "tool") put("tool", r.id, r.name, toolServer.has(r.id) ? `/servers/${enc(toolServer.get(r.id)!)}/tools` : null);
    else if (r.kind === "oauth_client") put("oauth_client", r.id, r.name, clientHref(r.id));
    else if (r.kind === "user") put("user", r.id, r.name, tenants === null ? "/settings/users" : null);
  }
  return out;
}
