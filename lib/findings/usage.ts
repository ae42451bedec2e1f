import "server-only";
import { sql } from "drizzle-orm";
import type { Db } from "@/db/client";

/**
 * Every read of the decision log the findings make, in one module: when the
 * audit store's rollup tables answer usage per (server, tool, user, client),
 * these functions are the one place to switch to them.
 */

/** Allowed and denied tools/call decisions of one (tenant, server, tool, user, client, scope set) in the window. */
export interface UsageRow {
  tenantId: string | null;
  serverId: string;
  tool: string;
  userId: string | null;
  clientId: string | null;
  scopes: string[];
  allowed: number;
  denied: number;
  lastAt: Date;
  /** The newest decision of the group (ids are UUIDv7: the greatest is the newest). */
  lastId: string;
}

/** Bounds the grouped answer: a window with more distinct groups is summarised on its first rows only, and says so. */
export const MAX_USAGE_GROUPS = 200_000;

const asDate = (v: unknown) => (v instanceof Date ? v : new Date(String(v)));
const rows = <T>(r: unknown): T[] => (Array.isArray(r) ? (r as T[]) : ((r as { rows?: T[] }).rows ?? []));
/** `(v1, v2, …)` with each value bound as a parameter. */
const inList = (values: string[]) =>
  sql`(${sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  )})`;

/** tools/call usage of these servers since `since`, grouped as in UsageRow. */
export async function usageSince(db: Db, serverIds: string[], since: Date): Promise<{ rows: UsageRow[]; truncated: boolean }> {
  if (!serverIds.length) return { rows: [], truncated: false };
  const r = await db.execute(sql`
    select tenant_id, server_id, tool, user_id, client_id, scopes,
           count(*) filter (where outcome = 'allow')::int as allowed,
           count(*) filter (where outcome <> 'allow')::int as denied,
           max(at) as last_at, max(id) as last_id
      from decisions
     where server_id in ${inList(serverIds)}
       and method = 'tools/call' and tool is not null and at >= ${since.toISOString()}::timestamptz
     group by tenant_id, server_id, tool, user_id, client_id, scopes
     limit ${MAX_USAGE_GROUPS + 1}`);
  const out = rows<Record<string, unknown>>(r).map((x) => ({
    tenantId: (x.tenant_id as string | null) ?? null,
    serverId: x.server_id as string,
    tool: x.tool as string,
    userId: (x.user_id as string | null) ?? null,
    clientId: (x.client_id as string | null) ?? null,
    scopes: Array.isArray(x.scopes) ? (x.scopes as unknown[]).filter((s): s is string => typeof s === "string") : [],
    allowed: Number(x.allowed),
    denied: Number(x.denied),
    lastAt: asDate(x.last_at),
    lastId: x.last_id as string,
  }));
  return { rows: out.slice(0, MAX_USAGE_GROUPS), truncated: out.length > MAX_USAGE_GROUPS };
}

/**
 * The last allowed call before `before` of each (tool, scope) of one server among `tools`: "last used" of an unused mapping.
 * `at` is over every tenant of the server; `id` is the newest such decision of `ownTenant` only (another tenant's decision id is not shown), or null.
 */
export async function lastScopeUseBefore(db: Db, serverId: string, tools: string[], before: Date, ownTenant: string): Promise<Map<string, { at: Date; id: string | null }>> {
  const out = new Map<string, { at: Date; id: string | null }>();
  if (!tools.length) return out;
  const r = await db.execute(sql`
    select d.tool, s.scope, max(d.at) as last_at, max(d.id) filter (where d.tenant_id = ${ownTenant}) as last_id
      from decisions d, jsonb_array_elements_text(d.scopes) as s(scope)
     where d.server_id = ${serverId} and d.method = 'tools/call' and d.outcome = 'allow'
       and d.tool in ${inList(tools)}
       and d.at < ${before.toISOString()}::timestamptz
     group by d.tool, s.scope`);
  for (const x of rows<Record<string, unknown>>(r)) out.set(`${x.tool as string}\u0000${x.scope as string}`, { at: asDate(x.last_at), id: (x.last_id as string | null) ?? null });
  return out;
}

/** The last tools/call of each tool of one server before `before` (any outcome): "last called" of an uncalled tool; `id` as in lastScopeUseBefore. */
export async function lastToolCallBefore(db: Db, serverId: string, tools: string[], before: Date, ownTenant: string): Promise<Map<string, { at: Date; id: string | null }>> {
  const out = new Map<string, { at: Date; id: string | null }>();
  if (!tools.length) return out;
  const r = await db.execute(sql`
    select tool, max(at) as last_at, max(id) filter (where tenant_id = ${ownTenant}) as last_id
      from decisions
     where server_id = ${serverId} and method = 'tools/call'
       and tool in ${inList(tools)}
       and at < ${before.toISOString()}::timestamptz
     group by tool`);
  for (const x of rows<Record<string, unknown>>(r)) out.set(x.tool as string, { at: asDate(x.last_at), id: (x.last_id as string | null) ?? null });
  return out;
}

/** The last `vault.resolve` (an agent fetching the secret) of each vault entry, from the admin trail. */
export async function lastVaultResolve(db: Db, entryIds: string[]): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  if (!entryIds.length) return out;
  const r = await db.execute(sql`
    select target_id, max(at) as last_at from audit_events
     where action = 'vault.resolve' and target_type = 'vault_entry'
       and target_id in ${inList(entryIds)}
     group by target_id`);
  for (const x of rows<Record<string, unknown>>(r)) out.set(x.target_id as string, asDate(x.last_at));
  return out;
}
