import "server-only";
import { and, desc, eq, inArray } from "drizzle-orm";
import type { Db } from "@/db/client";
import { auditEvents, decisions, fleets, fleetServers, oauthClients, servers, tenantIssuers, tenants, tools } from "@/db/schema";
import { can, type Actor } from "@/lib/auth/permissions";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import type { Ctx } from "@/lib/context";
import { AppError, forbidden } from "@/lib/errors";
import { createEnrollmentToken, createFleet, deleteFleet } from "@/lib/fleets/service";
import { approveClient, setClientApproval } from "@/lib/grants/service";
import { newId } from "@/lib/ids";
import { createPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer, deleteServer } from "@/lib/servers/service";
import { createTenant } from "@/lib/tenants/service";
import { publicTenantIssuer, tenantIssuerInput, updateTenantIssuer } from "@/lib/tenants/trust";
import { recordEvent } from "@/lib/trail/record";

/**
 * The sample data `npm start` brings up (issue 14.1): one tenant marked as
 * sample data, the sandbox ticket desk behind a local agent, its catalogue
 * approved, scopes mapped, two forbid policies, client approval on with one
 * approved demo client, a fleet with a published bundle. Everything is made
 * through the domain services; the tenant's slug marks it as the demo, and a
 * `demo.remove` trail event keeps a removed demo removed.
 */
export const DEMO_TENANT_NAME = "Demo (sample data)";
export const DEMO_TENANT_SLUG = "demo-sample-data";
export const DEMO_SERVER_NAME = "Ticket desk (demo)";
export const DEMO_FLEET_NAME = "Demo fleet (sample data)";
/** The OAuth client the demo trickle uses; approved in the demo tenant. */
export const DEMO_CLIENT_ID = "demo-assistant";
/** A second client the trickle uses once in a while; never approved, so its calls are denied. */
export const DEMO_UNAPPROVED_CLIENT_ID = "demo-unapproved-tool";
export const DEMO_SCOPES = ["tickets:read", "tickets:write", "tickets:admin"];
export const DEMO_MAPPING: Record<string, string[]> = {
  "tickets:read": ["list_tickets", "get_ticket"],
  "tickets:write": ["create_ticket", "close_ticket"],
  "tickets:admin": ["delete_project"],
};
/** The `tenant` claim the sandbox AS gives its accounts and unlabelled clients. */
export const SANDBOX_TENANT_CLAIM = "ten_demo";
const REMOVED_ACTION = "demo.remove";

/**
 * The actor the seed acts as: the start script runs before any user exists,
 * so it acts as the installation itself (global owner), as bootstrap does
 * when it creates the first owner. Shown as "demo seed (system)" in the trail.
 */
export const demoSeedActor: Actor = { type: "user", id: "system", label: "demo seed (system)", userId: "system", globalRole: "owner", tenantRoles: new Map() };

export interface DemoOptions {
  /** The sandbox upstream MCP endpoint (its catalogue is imported). */
  upstreamUrl: string;
  /** The sandbox authorization server's issuer. */
  issuer: string;
  /** The protected MCP URL: where the demo agent listens (the server's resource URI). */
  resourceUri: string;
}

export type DemoState = { status: "removed" } | { status: "active"; created: boolean; tenantId: string; serverId: string; fleetId: string; resourceUri: string };

/** The demo tenant row, if there is one. */
export async function findDemoTenant(db: Db) {
  const [t] = await db.select().from(tenants).where(eq(tenants.slug, DEMO_TENANT_SLUG));
  return t;
}

/** Whether an owner removed the demo (kept in the trail, so a removed demo stays removed). */
export async function demoRemoved(db: Db): Promise<boolean> {
  const [e] = await db.select({ id: auditEvents.id }).from(auditEvents).where(eq(auditEvents.action, REMOVED_ACTION)).limit(1);
  return Boolean(e);
}

async function demoParts(db: Db, tenantId: string) {
  const [server] = await db
    .select()
    .from(servers)
    .where(and(eq(servers.tenantId, tenantId), eq(servers.name, DEMO_SERVER_NAME)));
  const [fleet] = await db.select().from(fleets).where(eq(fleets.name, DEMO_FLEET_NAME));
  return { server, fleet };
}

/**
 * Seeds the demo once: idempotent (an existing demo tenant is returned as is)
 * and a removed demo is never brought back. `kek` seals the signing key and
 * signs the first bundle.
 */
export async function seedDemo(db: Db, kek: Kek, opts: DemoOptions): Promise<DemoState> {
  if (await demoRemoved(db)) return { status: "removed" };
  const ctx: Ctx = { db, actor: demoSeedActor };
  const existing = await findDemoTenant(db);
  if (existing) {
    const { server, fleet } = await demoParts(db, existing.id);
    if (server && fleet?.activeRevision) return { status: "active", created: false, tenantId: existing.id, serverId: server.id, fleetId: fleet.id, resourceUri: server.resourceUri };
    // A seed that stopped half-way (say the upstream went away): start it over.
    await purgeDemo(ctx, existing);
  }
  const tenant = (await createTenant(ctx, { name: DEMO_TENANT_NAME }))!;
  if (tenant.slug !== DEMO_TENANT_SLUG) throw new AppError("conflict", `A tenant already uses the slug ${DEMO_TENANT_SLUG}`);
  const server = (await createServer(
    ctx,
    createServerInput.parse({
      tenantId: tenant.id,
      name: DEMO_SERVER_NAME,
      description: "Sample data: the sandbox ticket desk behind the local demo agent. Remove it from Connect a client.",
      resourceUri: opts.resourceUri,
      upstreamUrl: opts.upstreamUrl,
      scopes: DEMO_SCOPES,
      // The sandbox AS puts the tenant in a `tenant` claim; trust maps that claim's value (this tenant's id) to this tenant.
      issuers: [{ issuer: opts.issuer, jwksUri: `${opts.issuer}/jwks`, discovery: false, algorithms: ["RS256"] }],
    }),
  ))!;
  // The sandbox AS's own accounts carry tenant "ten_demo" (and so do its clients with no tenant of their
  // own, e.g. MCP Inspector registering dynamically): the demo tenant takes those tokens too.
  const [trust] = await db
    .select()
    .from(tenantIssuers)
    .where(and(eq(tenantIssuers.tenantId, tenant.id), eq(tenantIssuers.issuer, opts.issuer)));
  if (trust) {
    const { id: _id, tenantId: _t, createdAt: _c, updatedAt: _u, ...entry } = publicTenantIssuer(trust);
    await updateTenantIssuer(
      ctx,
      tenant.id,
      trust.id,
      tenantIssuerInput.parse({
        ...entry,
        jwksUri: entry.jwksUri ?? undefined,
        revocationEndpoint: entry.revocationEndpoint ?? undefined,
        tenantMapping: { mode: "claim", claim: "tenant", values: [tenant.id, SANDBOX_TENANT_CLAIM] },
      }),
      kek,
    );
  }
  await importCatalog(ctx, server.id);
  for (const tool of await db.select().from(tools).where(eq(tools.serverId, server.id))) {
    await approveTool(ctx, tool.id, { versionId: tool.latestVersionId });
  }
  await putScopeMapping(ctx, server.id, { baseVersion: 0, mapping: DEMO_MAPPING });
  await createPolicy(ctx, {
    tenantId: tenant.id,
    serverId: server.id,
    name: "No tickets in the payroll project",
    description: "Sample policy: an argument-conditioned forbid. Assistants may file tickets, but not in payroll.",
    kind: "cedar",
    cedar: `forbid (principal, action, resource == Tool::"${server.id}/create_ticket")\nwhen { context.args has project && context.args.project == "payroll" };`,
    enabled: true,
  });
  await createPolicy(ctx, {
    tenantId: tenant.id,
    serverId: server.id,
    name: "Projects are never deleted by an assistant",
    description: "Sample policy: even a token holding tickets:admin may not call delete_project.",
    kind: "cedar",
    cedar: `forbid (principal, action, resource == Tool::"${server.id}/delete_project");`,
    enabled: true,
  });
  const fleet = (await createFleet(ctx, { name: DEMO_FLEET_NAME, description: "Sample data: the local demo agent.", serverIds: [server.id] }))!;
  await activeSigningKey(db, kek);
  // Client approval on, with the demo assistant approved: the other demo client's calls are denied.
  const [client] = await db
    .insert(oauthClients)
    .values({ id: newId("client"), tenantId: tenant.id, clientId: DEMO_CLIENT_ID, name: "Demo assistant (sample data)", registration: "static" })
    .returning();
  await approveClient(ctx, client!.id, kek);
  await setClientApproval(ctx, tenant.id, true, kek);
  await publishBundle(ctx, fleet.id, { note: "Demo (sample data): first bundle" }, kek);
  return { status: "active", created: true, tenantId: tenant.id, serverId: server.id, fleetId: fleet.id, resourceUri: server.resourceUri };
}

/** The bundle-signing public keys as a JWKS (what the demo agent verifies bundles with). */
export async function demoBundleKeys(db: Db) {
  const keys = await publicKeys(db);
  return { keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) };
}

/** A one-time enrollment token for the demo agent, and the bundle keys it verifies with. */
export async function demoAgentEnrollment(db: Db, fleetId: string) {
  const enrollment = await createEnrollmentToken({ db, actor: demoSeedActor }, fleetId, { ttlMinutes: 60 });
  return { token: enrollment.token, keys: await demoBundleKeys(db) };
}

/**
 * Removes the demo (owners): its fleet (agents, bundles, enrollment tokens),
 * its server (catalogue, mappings, policies, grants), its decisions and the
 * tenant (trust, clients, revocations, memberships). Recorded as
 * `demo.remove`, which also keeps it from being seeded again.
 */
export async function removeDemo(ctx: Ctx): Promise<{ removed: boolean }> {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only an owner removes the demo");
  const tenant = await findDemoTenant(ctx.db);
  if (!tenant) {
    if (!(await demoRemoved(ctx.db))) await recordEvent(ctx.db, ctx.actor, { action: REMOVED_ACTION, targetType: "tenant", targetId: DEMO_TENANT_SLUG, tenantId: null, before: null });
    return { removed: false };
  }
  const removed = await purgeDemo(ctx, tenant);
  await recordEvent(ctx.db, ctx.actor, { action: REMOVED_ACTION, targetType: "tenant", targetId: tenant.id, tenantId: null, before: { tenant: { id: tenant.id, name: tenant.name }, ...removed } });
  return { removed: true };
}

/** Deletes the demo tenant and what hangs off it (each step through its service, so each is in the trail). */
async function purgeDemo(ctx: Ctx, tenant: { id: string }) {
  const serverIds = (await ctx.db.select({ id: servers.id }).from(servers).where(eq(servers.tenantId, tenant.id))).map((s) => s.id);
  const fleetRows = serverIds.length ? await ctx.db.selectDistinct({ id: fleetServers.fleetId }).from(fleetServers).where(inArray(fleetServers.serverId, serverIds)) : [];
  const [demoFleet] = await ctx.db.select({ id: fleets.id }).from(fleets).where(eq(fleets.name, DEMO_FLEET_NAME));
  // Only the demo's own fleet is deleted; another fleet that also serves a demo server just loses it with the server.
  if (demoFleet) await deleteFleet(ctx, demoFleet.id);
  for (const id of serverIds) await deleteServer(ctx, id);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(decisions).where(eq(decisions.tenantId, tenant.id));
    await tx.delete(tenants).where(eq(tenants.id, tenant.id));
  });
  return { servers: serverIds, fleet: demoFleet?.id ?? null, otherFleets: fleetRows.map((f) => f.id).filter((id) => id !== demoFleet?.id) };
}

/** What the Connect page shows: whether the demo is on (to those who may read its tenant), and its protected MCP URL. */
export async function demoStatus(db: Db, actor?: Actor) {
  const tenant = await findDemoTenant(db);
  if (!tenant || (actor && !can(actor, "tenants.read", tenant.id))) return { active: false as const, removed: await demoRemoved(db) };
  const { server } = await demoParts(db, tenant.id);
  const [last] = await db.select({ at: auditEvents.at }).from(auditEvents).where(eq(auditEvents.tenantId, tenant.id)).orderBy(desc(auditEvents.at)).limit(1);
  return { active: true as const, tenantId: tenant.id, tenantName: tenant.name, serverId: server?.id ?? null, resourceUri: server?.resourceUri ?? null, lastChange: last?.at.toISOString() ?? null };
}
