/**
 * A month of MCP traffic and the registry rows around it, for the least
 * privilege tests, the e2e seed and bench/findings.ts. Registry rows go
 * through the services (servers, tools, scope mappings, fleets, vault);
 * decisions, grants, clients, agents and enrollment tokens are inserted as
 * agents and learning would leave them, at chosen instants.
 *
 * Tenant A owns server "Tickets" with scopes
 *   tickets.read  → list_tickets, get_ticket, export_all
 *   tickets.write → create_ticket, close_ticket, delete_ticket
 *   admin         → purge, export_all, delete_ticket, list_tickets
 * and, over 30 days (`scale` multiplies the calls per day):
 *   alice (cli-1, read+write) calls list_tickets, get_ticket, create_ticket (allowed)
 *   bob   (cli-2, read+write+admin) calls list_tickets only (allowed): uses 1 of 7 tools
 *   carol (cli-4, admin) calls close_ticket (denied: admin does not map it)
 * Expected for tenant A: 3 unused scope mappings (read: export_all; write:
 * close_ticket, delete_ticket; admin: purge, export_all, delete_ticket),
 * 3 tools never called (delete_ticket, export_all, purge), 2 unused grants,
 * 1 client not seen (cli-3), bob and cli-2 over-broad, vault: 1 past rotation,
 * 1 never rotated and 1 unused; fleet-wide: 1 agent not seen, 1 enrollment
 * token never used. Tenant B owns "Wiki" with its own traffic and findings.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Db } from "@/db/client";
import { agents, auditEvents, enrollmentTokens, grants, oauthClients, vaultEntries, type NewDecision } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import { addTool, addToolInput } from "@/lib/catalog/service";
import type { Ctx } from "@/lib/context";
import { createFleet } from "@/lib/fleets/service";
import { newId } from "@/lib/ids";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createEntry } from "@/lib/vault/service";
import { insertDecisions, type RowSpec } from "./decision-rows";

const DAY = 86_400_000;

export const TICKET_SCOPES = {
  "tickets.read": ["list_tickets", "get_ticket", "export_all"],
  "tickets.write": ["create_ticket", "close_ticket", "delete_ticket"],
  admin: ["purge", "export_all", "delete_ticket", "list_tickets"],
};
const TICKET_TOOLS: [string, "low" | "medium" | "high" | "critical"][] = [
  ["list_tickets", "low"],
  ["get_ticket", "low"],
  ["create_ticket", "medium"],
  ["close_ticket", "medium"],
  ["delete_ticket", "high"],
  ["export_all", "high"],
  ["purge", "critical"],
];

export interface SeededMonth {
  now: Date;
  tenantA: string;
  tenantB: string;
  ticketsServer: string;
  wikiServer: string;
  fleetId: string;
  decisions: number;
  /** Decisions of the Tickets server (tenant A). */
  ticketDecisions: number;
  grantIds: { used: string; unused: string; neverSeen: string };
}

async function serverWith(ctx: Ctx, tenantId: string, name: string, scopes: Record<string, string[]>, toolList: [string, "low" | "medium" | "high" | "critical"][]) {
  const id = randomBytes(4).toString("hex");
  const s = await createServer(
    ctx,
    createServerInput.parse({
      tenantId,
      name: `${name} ${id}`,
      resourceUri: `https://${name.toLowerCase()}-${id}.example.com/mcp`,
      upstreamUrl: "https://upstream.example/mcp",
      scopes: Object.keys(scopes),
    }),
  );
  for (const [n, risk] of toolList) await addTool(ctx, s.id, addToolInput.parse({ name: n, risk, inputSchema: { type: "object", properties: { id: { type: "string" } } } }));
  await putScopeMapping(ctx, s.id, { baseVersion: 0, mapping: scopes });
  return s.id;
}

/**
 * Seeds the month ending at `now` (default: now). `owner` must be an owner
 * actor; `tenantA` and `tenantB` existing tenants.
 */
export async function seedMonth(owner: Ctx, tenantA: string, tenantB: string, kek: Kek, opts: { now?: Date; scale?: number } = {}): Promise<SeededMonth> {
  const db: Db = owner.db;
  const now = opts.now ?? new Date();
  const scale = opts.scale ?? 1;
  const ticketsServer = await serverWith(owner, tenantA, "Tickets", TICKET_SCOPES, TICKET_TOOLS);
  const wikiServer = await serverWith(owner, tenantB, "Wiki", { "wiki.read": ["read_page", "search"], "wiki.write": ["edit_page", "delete_page"] }, [
    ["read_page", "low"],
    ["search", "low"],
    ["edit_page", "medium"],
    ["delete_page", "high"],
  ]);
  const fleet = await createFleet(owner, { name: `LP fleet ${randomBytes(3).toString("hex")}`, serverIds: [ticketsServer, wikiServer] });

  // ---- decisions: 30 days, a few calls per day and caller.
  const specs: RowSpec[] = [];
  const call = (atMs: number, o: Partial<NewDecision> & { serverId: string }) => specs.push({ atMs, fleetId: fleet.id, agentId: "agt_seed", method: "tools/call", ...o });
  for (let day = 0; day < 30; day++) {
    const dayStart = now.getTime() - (day + 1) * DAY + 3600_000;
    for (let k = 0; k < scale; k++) {
      const t = dayStart + k * 1000 + 17;
      const a = { tenantId: tenantA, serverId: ticketsServer, userId: "alice", clientId: "cli-1", scopes: ["tickets.read", "tickets.write"] };
      call(t, { ...a, tool: "list_tickets", outcome: "allow", args: {} });
      call(t + 100, { ...a, tool: "get_ticket", outcome: "allow", args: { id: `T-${day}-${k}` } });
      if (day % 2 === 0) call(t + 200, { ...a, tool: "create_ticket", outcome: "allow", args: { id: `N-${day}` } });
      call(t + 300, {
        tenantId: tenantA,
        serverId: ticketsServer,
        userId: "bob",
        clientId: "cli-2",
        scopes: ["tickets.read", "tickets.write", "admin"],
        tool: "list_tickets",
        outcome: "allow",
        args: {},
      });
      if (day % 5 === 0)
        call(t + 400, {
          tenantId: tenantA,
          serverId: ticketsServer,
          userId: "carol",
          clientId: "cli-4",
          scopes: ["admin"],
          tool: "close_ticket",
          outcome: "deny",
          reason: "no policy permits",
          args: { id: `T-${day}` },
        });
      // Tenant B: its user reads and searches its wiki.
      const w = { tenantId: tenantB, serverId: wikiServer, userId: "wendy", clientId: "wcli", scopes: ["wiki.read", "wiki.write"] };
      call(t + 500, { ...w, tool: "read_page", outcome: "allow", args: {} });
    }
  }
  await insertDecisions(db, specs);

  // ---- grants and clients, as learning leaves them.
  const ago = (d: number) => new Date(now.getTime() - d * DAY);
  const grant = (o: Partial<typeof grants.$inferInsert> & { userId: string; clientId: string }) => ({
    id: newId("grant"),
    tenantId: tenantA,
    serverId: ticketsServer,
    scopes: ["tickets.read"],
    source: "learned" as const,
    ...o,
  });
  const used = grant({ userId: "alice", clientId: "cli-1", firstSeenAt: ago(30), lastSeenAt: ago(1), calls: 75 * scale });
  const unused = grant({ userId: "dave", clientId: "cli-3", firstSeenAt: ago(80), lastSeenAt: ago(45), calls: 12, createdAt: ago(80) });
  const neverSeen = grant({ userId: "erin", clientId: "cli-2", source: "imported", createdAt: ago(40) });
  await db
    .insert(grants)
    .values([
      used,
      unused,
      neverSeen,
      { id: newId("grant"), tenantId: tenantB, serverId: wikiServer, userId: "wendy", clientId: "wcli", scopes: ["wiki.read"], firstSeenAt: ago(30), lastSeenAt: ago(1), calls: 30 },
    ]);
  await db.insert(oauthClients).values([
    { id: newId("client"), tenantId: tenantA, clientId: "cli-1", name: "Desk app", status: "approved", firstSeenAt: ago(30), lastSeenAt: ago(1), createdAt: ago(30) },
    { id: newId("client"), tenantId: tenantA, clientId: "cli-2", name: "Bot", status: "approved", firstSeenAt: ago(30), lastSeenAt: ago(1), createdAt: ago(30) },
    { id: newId("client"), tenantId: tenantA, clientId: "cli-3", name: "Old laptop tool", status: "approved", firstSeenAt: ago(80), lastSeenAt: ago(45), createdAt: ago(80) },
    { id: newId("client"), tenantId: tenantB, clientId: "wcli-old", name: "Wiki sync", status: "pending", firstSeenAt: ago(90), lastSeenAt: ago(60), createdAt: ago(90) },
  ]);

  // ---- vault: the tenant's own entry is due for rotation but fetched; the shared one is old, never rotated and unused.
  const own = await createEntry(owner, { serverId: ticketsServer, tenantId: tenantA, name: "Tickets API key (A)", kind: "bearer", secret: "sk-live-0123456789abcdef", rotationIntervalDays: 30 }, kek);
  const shared = await createEntry(owner, { serverId: ticketsServer, tenantId: null, name: "Tickets shared key", kind: "bearer", secret: "sk-shared-0123456789abcdef" }, kek);
  await db
    .update(vaultEntries)
    .set({ createdAt: ago(40), nextRotationAt: ago(10) })
    .where(eq(vaultEntries.id, own.id));
  await db
    .update(vaultEntries)
    .set({ createdAt: ago(60) })
    .where(eq(vaultEntries.id, shared.id));
  await db.insert(auditEvents).values({
    id: newId("event"),
    at: ago(2),
    actorType: "agent",
    actorId: "agt_seed",
    actorLabel: "seed agent",
    action: "vault.resolve",
    targetType: "vault_entry",
    targetId: own.id,
    tenantId: tenantA,
    after: { version: 1 },
  });

  // ---- an agent not seen for 40 days and one seen today; an enrollment token never used.
  await db.insert(agents).values([
    { id: newId("agent"), fleetId: fleet.id, name: "edge-old", keyHash: randomBytes(32).toString("hex"), createdAt: ago(90), lastSeenAt: ago(40) },
    { id: newId("agent"), fleetId: fleet.id, name: "edge-1", keyHash: randomBytes(32).toString("hex"), createdAt: ago(20), lastSeenAt: now },
  ]);
  await db.insert(enrollmentTokens).values({ id: newId("enrollment"), fleetId: fleet.id, secretHash: randomBytes(32).toString("hex"), createdBy: "seed", createdAt: ago(2), expiresAt: ago(1) });

  return {
    now,
    tenantA,
    tenantB,
    ticketsServer,
    wikiServer,
    fleetId: fleet.id,
    decisions: specs.length,
    ticketDecisions: specs.filter((x) => x.serverId === ticketsServer).length,
    grantIds: { used: used.id, unused: unused.id, neverSeen: neverSeen.id },
  };
}

/** What the seeded month must produce for tenant A and the fleet-wide findings (see the header). */
export const EXPECTED_A = {
  unused_scope_mapping: 3,
  uncalled_tool: 3,
  unused_grant: 2,
  unseen_client: 1,
  over_broad_user: 1,
  over_broad_client: 1,
  vault_rotation_due: 1,
  vault_never_rotated: 1,
  vault_unused: 1,
};
export const EXPECTED_GLOBAL = { agent_unseen: 1, enrollment_token_unused: 1 };
