import "server-only";
import { sql } from "drizzle-orm";
import type { Db } from "@/db/client";
import { newId } from "@/lib/ids";

/** One decision as the grant learner needs it. */
export interface LearnRow {
  tenantId: string | null;
  serverId: string;
  userId: string | null;
  clientId: string | null;
  scopes: string[];
  /** A Date, or milliseconds since the epoch. */
  at: Date | number;
  outcome: string;
}

/** Registration guessed from the client id alone: an https URL names an MCP client ID metadata document. */
export function guessRegistration(clientId: string): "metadata_document" | "unknown" {
  return /^https:\/\/[^\s]+$/i.test(clientId) ? "metadata_document" : "unknown";
}

interface GrantAgg {
  id: string;
  tenant_id: string;
  server_id: string;
  user_id: string;
  client_id: string;
  scopes: Set<string>;
  first: number;
  last: number;
  calls: number;
}

interface ClientAgg {
  id: string;
  tenant_id: string;
  client_id: string;
  registration: string;
  first: number;
  last: number;
}

/**
 * Learns grants and OAuth clients from a batch of decisions: one statement for
 * grants, one for clients, whatever the batch size. Every decision with a
 * tenant, user and client makes its client known; only allowed calls count as
 * grant usage (a denied call is not a use of the delegation). Rows whose
 * tenant or server no longer exists are skipped by the joins, never failing
 * the batch. Not idempotent: the caller passes only newly stored decisions.
 */
export async function learnFromDecisions(db: Db, rows: LearnRow[]): Promise<void> {
  const grants = new Map<string, GrantAgg>();
  const clients = new Map<string, ClientAgg>();
  for (const r of rows) {
    if (!r.tenantId || !r.userId || !r.clientId) continue;
    const t = typeof r.at === "number" ? r.at : r.at.getTime();
    if (!Number.isFinite(t)) continue;
    const ck = `${r.tenantId}\u0000${r.clientId}`;
    const c = clients.get(ck);
    if (c) {
      c.first = Math.min(c.first, t);
      c.last = Math.max(c.last, t);
    } else {
      clients.set(ck, { id: newId("client"), tenant_id: r.tenantId, client_id: r.clientId, registration: guessRegistration(r.clientId), first: t, last: t });
    }
    if (r.outcome !== "allow") continue;
    const gk = `${r.tenantId}\u0000${r.serverId}\u0000${r.userId}\u0000${r.clientId}`;
    const g = grants.get(gk);
    if (g) {
      g.first = Math.min(g.first, t);
      g.last = Math.max(g.last, t);
      g.calls++;
      for (const s of r.scopes) g.scopes.add(s);
    } else {
      grants.set(gk, {
        id: newId("grant"),
        tenant_id: r.tenantId,
        server_id: r.serverId,
        user_id: r.userId,
        client_id: r.clientId,
        scopes: new Set(r.scopes),
        first: t,
        last: t,
        calls: 1,
      });
    }
  }

  if (grants.size) {
    // Locked in key order (ORDER BY below: the joins may reorder the input) so concurrent batches never deadlock.
    const payload = JSON.stringify(
      [...grants.entries()]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([, g]) => ({ ...g, scopes: [...g.scopes].sort(), first: new Date(g.first).toISOString(), last: new Date(g.last).toISOString() })),
    );
    await db.execute(sql`
      insert into grants (id, tenant_id, server_id, user_id, client_id, scopes, source, first_seen_at, last_seen_at, calls)
      select t.id, t.tenant_id, t.server_id, t.user_id, t.client_id, t.scopes, 'learned', t.first, t.last, t.calls
      from jsonb_to_recordset(${payload}::jsonb) as t(id text, tenant_id text, server_id text, user_id text, client_id text, scopes jsonb, first timestamptz, last timestamptz, calls int4)
      join tenants on tenants.id = t.tenant_id
      join servers on servers.id = t.server_id
      order by t.tenant_id, t.server_id, t.user_id, t.client_id
      on conflict (tenant_id, server_id, user_id, client_id) do update set
        first_seen_at = least(coalesce(grants.first_seen_at, excluded.first_seen_at), excluded.first_seen_at),
        last_seen_at = greatest(coalesce(grants.last_seen_at, excluded.last_seen_at), excluded.last_seen_at),
        calls = grants.calls + excluded.calls,
        scopes = case when grants.scopes @> excluded.scopes then grants.scopes
          else coalesce((select jsonb_agg(distinct s order by s) from jsonb_array_elements_text(grants.scopes || excluded.scopes) as u(s)), '[]'::jsonb) end`);
  }

  if (clients.size) {
    const payload = JSON.stringify(
      [...clients.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, c]) => ({ ...c, first: new Date(c.first).toISOString(), last: new Date(c.last).toISOString() })),
    );
    await db.execute(sql`
      insert into oauth_clients (id, tenant_id, client_id, registration, first_seen_at, last_seen_at)
      select t.id, t.tenant_id, t.client_id, t.registration, t.first, t.last
      from jsonb_to_recordset(${payload}::jsonb) as t(id text, tenant_id text, client_id text, registration text, first timestamptz, last timestamptz)
      join tenants on tenants.id = t.tenant_id
      order by t.tenant_id, t.client_id
      on conflict (tenant_id, client_id) do update set
        first_seen_at = least(coalesce(oauth_clients.first_seen_at, excluded.first_seen_at), excluded.first_seen_at),
        last_seen_at = greatest(coalesce(oauth_clients.last_seen_at, excluded.last_seen_at), excluded.last_seen_at)`);
  }
}
