import "server-only";
import { and, desc, eq, gt, inArray, lt, lte, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import {
  approvalRequests,
  approvalSettings,
  approverGroupMembers,
  approverGroups,
  bundles,
  fleetServers,
  memberships,
  serverTenants,
  servers,
  users,
  type Agent,
  type ApprovalRequest,
} from "@/db/schema";
import { can, roleIn, type Actor } from "@/lib/auth/permissions";
import type { Kek } from "@/lib/bundles/signing";
import { republishLiveBundles } from "@/lib/bundles/service";
import type { Ctx } from "@/lib/context";
import { AppError, conflict, forbidden, notFound } from "@/lib/errors";
import { APPROVAL_LIMITS, type ApprovalReport, type ApprovalReportAnswer } from "@/lib/enforcement/approval";
import type { BundlePolicyMeta } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { loadTenant, readableTenantIds } from "@/lib/tenants/service";
import { recordEvent } from "@/lib/trail/record";
import { notifyRequested } from "./notify";

/** How long a request waits for a person unless the tenant says otherwise (minutes). */
export const DEFAULT_REQUEST_TTL_MINUTES = 15;

// ---------------------------------------------------------------- inputs

const groupName = z
  .string()
  .trim()
  .min(1, "must not be empty")
  .max(APPROVAL_LIMITS.group, `must be at most ${APPROVAL_LIMITS.group} characters`)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, 'letters, digits, and _ . : - (the name policies use in @approval("…"))');

export const approvalListQuery = z.object({
  tenantId: z.string().max(100).optional().describe("Only this tenant's requests"),
  status: z.enum(["requested", "approved", "rejected", "expired", "executed"]).optional().describe("Only requests in this state"),
  view: z.enum(["mine", "all"]).default("mine").describe("mine: requests the caller may decide; all: every request of the tenants the caller reads"),
  cursor: z.string().max(100).optional().describe("Opaque cursor from the previous page's nextCursor"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ApprovalListQuery = z.infer<typeof approvalListQuery>;

export const decideApprovalInput = z.object({
  decision: z.enum(["approve", "reject"]).describe("Approve or reject the call"),
  reason: z.string().trim().max(APPROVAL_LIMITS.reason, `must be at most ${APPROVAL_LIMITS.reason} characters`).default("").describe("Why (shown to the caller on a rejection and in the trail)"),
  similarMinutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(APPROVAL_LIMITS.similarMinutes)
    .optional()
    .describe("Approve similar calls (same tool, user and client, any arguments) for this many minutes instead of this exact call"),
});

export const groupListQuery = z.object({ tenantId: z.string().max(100).describe("The tenant whose groups to list") });
export const createGroupInput = z.object({ tenantId: z.string().max(100), name: groupName.describe('The name policies use: @approval("<name>")') });
export const groupMemberInput = z.object({ email: z.string().trim().toLowerCase().max(320).describe("E-mail of a user who holds a role in the group's tenant") });
export const approvalSettingsInput = z.object({
  requestTtlMinutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .optional()
    .describe("How long a request waits for a decision, and how long an approval of one call holds"),
  webhookUrl: z
    .union([z.literal(""), z.url().max(2048)])
    .optional()
    .describe("Slack-compatible incoming webhook told of each new request (empty: none). Write-only."),
});

// ---------------------------------------------------------------- shapes

/** A request as the API and dashboard show it. */
export function publicApproval(r: ApprovalRequest, viewer?: { canDecide: boolean; own: boolean; serverName?: string }) {
  const expired = r.status === "requested" && r.expiresAt <= new Date();
  return {
    id: r.id,
    tenantId: r.tenantId,
    serverId: r.serverId,
    serverName: viewer?.serverName ?? null,
    tool: r.tool,
    userId: r.userId,
    clientId: r.clientId,
    callHash: r.callHash,
    args: r.args,
    policies: r.policies,
    approvers: r.approvers,
    status: expired ? ("expired" as const) : r.status,
    scope: r.scope,
    requestedAt: r.requestedAt.toISOString(),
    expiresAt: r.expiresAt.toISOString(),
    decidedBy: r.decidedByLabel,
    decidedAt: r.decidedAt?.toISOString() ?? null,
    reason: r.reason,
    approvalExpiresAt: r.approvalExpiresAt?.toISOString() ?? null,
    executedAt: r.executedAt?.toISOString() ?? null,
    canDecide: viewer?.canDecide ?? false,
    ownRequest: viewer?.own ?? false,
  };
}
export type PublicApproval = ReturnType<typeof publicApproval>;

// ---------------------------------------------------------------- approvers

/** The approver groups (by name) this actor's user belongs to in a tenant, if the actor holds a role there. */
async function groupsOf(db: Db, actor: Actor, tenantId: string): Promise<Set<string>> {
  if (!roleIn(actor, tenantId)) return new Set();
  const rows = await db
    .select({ name: approverGroups.name })
    .from(approverGroupMembers)
    .innerJoin(approverGroups, eq(approverGroups.id, approverGroupMembers.groupId))
    .where(and(eq(approverGroupMembers.userId, actor.userId), eq(approverGroups.tenantId, tenantId)));
  return new Set(rows.map((r) => r.name));
}

/** The token identity (`<issuer>#<subject>`) of the actor's user, if it signs in with SSO: four-eyes compares it with the caller's. */
async function identityOf(db: Db, actor: Actor): Promise<string | null> {
  const [u] = await db.select({ iss: users.oidcIssuer, sub: users.oidcSubject }).from(users).where(eq(users.id, actor.userId));
  return u?.iss && u.sub ? `${u.iss}#${u.sub}` : null;
}

const mayDecide = (groups: Set<string>, r: Pick<ApprovalRequest, "approvers">) => r.approvers.some((g) => groups.has(g));

// ---------------------------------------------------------------- agent side

/** The control plane's public page of a request. */
export const approvalPageUrl = (origin: string, id: string) => `${origin.replace(/\/+$/, "")}/approvals/${encodeURIComponent(id)}`;

/**
 * A report from an agent (POST /api/v1/agent/approvals). "requested": files
 * (or finds again) the open request for this exact call; the agent's fleet must
 * serve the server and the server admit the tenant. "executed": an approved call
 * was let through. Tenant and server are checked against the rows, never taken
 * on trust.
 */
export async function reportFromAgent(db: Db, agent: Pick<Agent, "id" | "name" | "fleetId">, report: ApprovalReport, origin: string, kek?: Kek): Promise<ApprovalReportAnswer> {
  const who = { type: "agent" as const, id: agent.id, label: agent.name };
  if (report.kind === "executed") {
    return db.transaction(async (tx) => {
      const [r] = await tx.select().from(approvalRequests).where(eq(approvalRequests.id, report.approvalId)).for("update");
      if (!r || r.tenantId !== report.tenantId || !(await fleetServes(tx, agent.fleetId, r.serverId))) throw notFound("Approval request");
      if (r.status !== "approved" && r.status !== "executed") throw conflict(`This request is ${r.status}`);
      if (r.status === "approved") {
        const [done] = await tx.update(approvalRequests).set({ status: "executed", executedAt: new Date() }).where(eq(approvalRequests.id, r.id)).returning();
        await recordEvent(tx, who, {
          action: "approval.executed",
          targetType: "approval",
          targetId: r.id,
          tenantId: r.tenantId,
          after: { serverId: r.serverId, tool: r.tool, userId: r.userId, clientId: r.clientId, decisionId: report.decisionId ?? null },
        });
        // An approval of one call is used up: republished without it, so other agents stop honouring it.
        if (r.scope === "call" && kek) await republishLiveBundles(tx, "system", kek, [r.serverId], `approval ${r.id} executed`);
        return answer(done!, origin);
      }
      return answer(r, origin);
    });
  }
  const [served] = await db
    .select({
      owner: servers.tenantId,
      shared: sql<boolean>`exists (select 1 from ${serverTenants} where ${serverTenants.serverId} = ${servers.id} and ${serverTenants.tenantId} = ${report.tenantId})`,
    })
    .from(fleetServers)
    .innerJoin(servers, eq(servers.id, fleetServers.serverId))
    .where(and(eq(fleetServers.fleetId, agent.fleetId), eq(fleetServers.serverId, report.serverId)));
  if (!served) throw forbidden("This agent's fleet does not serve this server");
  if (served.owner !== report.tenantId && !served.shared) throw forbidden("This tenant may not use this server");
  // Who may approve comes from the bundle the agent decided with (its fleet, its revision), never from the report alone.
  const approvers = await approversInBundle(db, agent.fleetId, report.bundleRevision, report.serverId, report.tenantId, report.policies);
  if (!approvers.length) throw conflict("No policy of this bundle revision asks for approval of this call");
  const now = new Date();
  const ttl = await requestTtl(db, report.tenantId);
  const filed = await db.transaction(async (tx) => {
    // An open request past its expiry is closed first, so the open-request index admits a new one.
    await tx
      .update(approvalRequests)
      .set({ status: "expired" })
      .where(and(eq(approvalRequests.tenantId, report.tenantId), eq(approvalRequests.callHash, report.callHash), eq(approvalRequests.status, "requested"), lte(approvalRequests.expiresAt, now)));
    const [open] = await tx
      .select()
      .from(approvalRequests)
      .where(and(eq(approvalRequests.tenantId, report.tenantId), eq(approvalRequests.callHash, report.callHash), eq(approvalRequests.status, "requested")));
    if (open) return { row: open, created: false };
    const [row] = await tx
      .insert(approvalRequests)
      .values({
        id: newId("approval"),
        tenantId: report.tenantId,
        serverId: report.serverId,
        tool: report.tool,
        userId: report.user,
        clientId: report.client,
        callHash: report.callHash,
        args: report.args,
        policies: report.policies,
        approvers,
        agentId: agent.id,
        bundleRevision: report.bundleRevision,
        requestedAt: now,
        expiresAt: new Date(now.getTime() + ttl * 60_000),
      })
      .onConflictDoNothing()
      .returning();
    if (!row) {
      // Another agent filed the same call a moment ago.
      const [again] = await tx
        .select()
        .from(approvalRequests)
        .where(and(eq(approvalRequests.tenantId, report.tenantId), eq(approvalRequests.callHash, report.callHash), eq(approvalRequests.status, "requested")));
      if (!again) throw conflict("The request could not be filed; try again");
      return { row: again, created: false };
    }
    await recordEvent(tx, who, {
      action: "approval.requested",
      targetType: "approval",
      targetId: row.id,
      tenantId: row.tenantId,
      after: { serverId: row.serverId, tool: row.tool, userId: row.userId, clientId: row.clientId, policies: row.policies, approvers: row.approvers, expiresAt: row.expiresAt.toISOString() },
    });
    return { row, created: true };
  });
  if (filed.created && kek) void notifyRequested(db, kek, filed.row, approvalPageUrl(origin, filed.row.id));
  return answer(filed.row, origin);
}

const answer = (r: ApprovalRequest, origin: string): ApprovalReportAnswer => ({ id: r.id, url: approvalPageUrl(origin, r.id), expiresAt: r.expiresAt.toISOString(), status: r.status });

/**
 * The approver groups the named policies of one signed bundle revision ask for,
 * when each is an `@approval` forbid of this server and tenant (or of every
 * tenant); empty when any is not. Reads only the bundle's policy metadata.
 */
async function approversInBundle(db: Db, fleetId: string, revision: number, serverId: string, tenantId: string, policyIds: string[]): Promise<string[]> {
  const [row] = await db
    .select({ policies: sql<Record<string, BundlePolicyMeta> | null>`${bundles.content}->'policies'` })
    .from(bundles)
    .where(and(eq(bundles.fleetId, fleetId), eq(bundles.revision, revision)));
  const out: string[] = [];
  for (const id of policyIds) {
    const m = row?.policies?.[id];
    if (!m?.approval || m.serverId !== serverId || (m.tenantId !== null && m.tenantId !== tenantId)) return [];
    for (const g of m.approval.approvers) if (!out.includes(g)) out.push(g);
  }
  return out;
}

async function fleetServes(db: Db, fleetId: string, serverId: string): Promise<boolean> {
  const [row] = await db
    .select({ s: fleetServers.serverId })
    .from(fleetServers)
    .where(and(eq(fleetServers.fleetId, fleetId), eq(fleetServers.serverId, serverId)));
  return !!row;
}

async function requestTtl(db: Db, tenantId: string): Promise<number> {
  const [s] = await db.select({ ttl: approvalSettings.requestTtlMinutes }).from(approvalSettings).where(eq(approvalSettings.tenantId, tenantId));
  return s?.ttl ?? DEFAULT_REQUEST_TTL_MINUTES;
}

// ---------------------------------------------------------------- dashboard side

/**
 * Requests of the tenants the actor reads, newest first. view "mine" keeps
 * those the actor may decide (open, in a group the request names, not the
 * actor's own call); "all" needs nothing more than reading the tenant.
 */
export async function listApprovals(ctx: Ctx, q: ApprovalListQuery) {
  const readable = readableTenantIds(ctx.actor);
  const where: SQL[] = [];
  if (q.tenantId) {
    if (readable !== "all" && !readable.includes(q.tenantId)) return { items: [], nextCursor: null };
    where.push(eq(approvalRequests.tenantId, q.tenantId));
  } else if (readable !== "all") {
    if (!readable.length) return { items: [], nextCursor: null };
    where.push(inArray(approvalRequests.tenantId, readable));
  }
  const now = new Date();
  if (q.view === "mine" || q.status === "requested") where.push(eq(approvalRequests.status, "requested"), gt(approvalRequests.expiresAt, now));
  else if (q.status === "expired") where.push(or(eq(approvalRequests.status, "expired"), and(eq(approvalRequests.status, "requested"), lte(approvalRequests.expiresAt, now)))!);
  else if (q.status) where.push(eq(approvalRequests.status, q.status));
  if (q.cursor) where.push(lt(approvalRequests.id, q.cursor));
  const rows = await ctx.db
    .select({ r: approvalRequests, serverName: servers.name })
    .from(approvalRequests)
    .innerJoin(servers, eq(servers.id, approvalRequests.serverId))
    .where(and(...where))
    .orderBy(desc(approvalRequests.id))
    .limit(q.view === "mine" ? 500 : q.limit + 1);
  const identity = await identityOf(ctx.db, ctx.actor);
  const groupCache = new Map<string, Set<string>>();
  const items: PublicApproval[] = [];
  for (const { r, serverName } of rows) {
    if (!can(ctx.actor, "tenants.read", r.tenantId)) continue;
    let groups = groupCache.get(r.tenantId);
    if (!groups) groupCache.set(r.tenantId, (groups = await groupsOf(ctx.db, ctx.actor, r.tenantId)));
    const own = identity !== null && identity === r.userId;
    const open = r.status === "requested" && r.expiresAt > now;
    const canDecide = open && !own && mayDecide(groups, r);
    if (q.view === "mine" && !canDecide) continue;
    items.push(publicApproval(r, { canDecide, own, serverName }));
    if (items.length > q.limit) break;
  }
  const more = items.length > q.limit;
  const page = more ? items.slice(0, q.limit) : items;
  return { items: page, nextCursor: more ? page[page.length - 1]!.id : null };
}

/** One request, by id, for anyone who reads its tenant (404 otherwise). */
export async function getApproval(ctx: Ctx, id: string): Promise<PublicApproval> {
  const [row] = await ctx.db
    .select({ r: approvalRequests, serverName: servers.name })
    .from(approvalRequests)
    .innerJoin(servers, eq(servers.id, approvalRequests.serverId))
    .where(eq(approvalRequests.id, id));
  if (!row || !can(ctx.actor, "tenants.read", row.r.tenantId)) throw notFound("Approval request");
  const r = row.r;
  const [groups, identity] = await Promise.all([groupsOf(ctx.db, ctx.actor, r.tenantId), identityOf(ctx.db, ctx.actor)]);
  const own = identity !== null && identity === r.userId;
  const canDecide = r.status === "requested" && r.expiresAt > new Date() && !own && mayDecide(groups, r);
  return publicApproval(r, { canDecide, own, serverName: row.serverName });
}

/**
 * Approves or rejects an open request. Authorized against the request's own
 * tenant: the actor holds a role there and belongs to an approver group the
 * request names; four-eyes: the actor's SSO identity is not the caller's. The
 * decision goes to the trail and, in the same transaction, into a new live
 * revision of every fleet serving the server (agents learn of it at once).
 */
export async function decideApproval(ctx: Ctx, id: string, input: z.infer<typeof decideApprovalInput>, kek: Kek) {
  return ctx.db.transaction(async (tx) => {
    const [r] = await tx.select().from(approvalRequests).where(eq(approvalRequests.id, id)).for("update");
    if (!r || !can(ctx.actor, "tenants.read", r.tenantId)) throw notFound("Approval request");
    const now = new Date();
    if (r.status === "requested" && r.expiresAt <= now) {
      await tx.update(approvalRequests).set({ status: "expired" }).where(eq(approvalRequests.id, r.id));
      throw conflict(`This request expired at ${r.expiresAt.toISOString()}; the caller must call again to ask anew`);
    }
    if (r.status !== "requested") throw conflict(`This request was already ${r.status}${r.decidedByLabel ? ` by ${r.decidedByLabel}` : ""}; nothing changed`);
    const groups = await groupsOf(tx, ctx.actor, r.tenantId);
    if (!mayDecide(groups, r)) throw forbidden(`Only members of ${r.approvers.join(" or ")} may decide this request`);
    const identity = await identityOf(tx, ctx.actor);
    if (identity !== null && identity === r.userId) throw forbidden("You made this call: someone else must approve it (four-eyes)");
    const approve = input.decision === "approve";
    const similar = approve && input.similarMinutes !== undefined;
    const ttl = await requestTtl(tx, r.tenantId);
    const [done] = await tx
      .update(approvalRequests)
      .set({
        status: approve ? "approved" : "rejected",
        scope: similar ? "similar" : "call",
        decidedBy: ctx.actor.userId,
        decidedByLabel: ctx.actor.label,
        decidedAt: now,
        reason: input.reason,
        // One call: usable for as long as a request waits; similar calls: for the window chosen.
        ...(approve ? { approvalExpiresAt: new Date(now.getTime() + (similar ? input.similarMinutes! : ttl) * 60_000) } : {}),
      })
      .where(eq(approvalRequests.id, r.id))
      .returning();
    await recordEvent(tx, ctx.actor, {
      action: approve ? "approval.approved" : "approval.rejected",
      targetType: "approval",
      targetId: r.id,
      tenantId: r.tenantId,
      before: { status: r.status },
      after: {
        status: done!.status,
        scope: done!.scope,
        reason: input.reason,
        approvalExpiresAt: done!.approvalExpiresAt?.toISOString() ?? null,
        serverId: r.serverId,
        tool: r.tool,
        userId: r.userId,
        clientId: r.clientId,
      },
    });
    const republished = await republishLiveBundles(tx, ctx.actor, kek, [r.serverId], `approval ${r.id} ${approve ? "approved" : "rejected"}`);
    return { approval: publicApproval(done!, { canDecide: false, own: false }), republished };
  });
}

// ---------------------------------------------------------------- approver groups

export async function listGroups(ctx: Ctx, tenantId: string) {
  await loadTenant(ctx, tenantId, "members.read");
  const groups = await ctx.db.select().from(approverGroups).where(eq(approverGroups.tenantId, tenantId)).orderBy(approverGroups.name);
  const members = groups.length
    ? await ctx.db
        .select({ groupId: approverGroupMembers.groupId, userId: users.id, email: users.email, name: users.name })
        .from(approverGroupMembers)
        .innerJoin(users, eq(users.id, approverGroupMembers.userId))
        .where(
          inArray(
            approverGroupMembers.groupId,
            groups.map((g) => g.id),
          ),
        )
    : [];
  return groups.map((g) => ({
    id: g.id,
    tenantId: g.tenantId,
    name: g.name,
    createdAt: g.createdAt.toISOString(),
    members: members.filter((m) => m.groupId === g.id).map(({ groupId: _g, ...m }) => m),
  }));
}

export async function createGroup(ctx: Ctx, input: z.infer<typeof createGroupInput>) {
  const t = await loadTenant(ctx, input.tenantId, "members.write");
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(approverGroups)
      .values({ id: newId("approverGroup"), tenantId: t.id, name: input.name, createdBy: ctx.actor.label })
      .onConflictDoNothing()
      .returning();
    if (!row) throw conflict(`A group named ${input.name} already exists in this tenant`, "name");
    await recordEvent(tx, ctx.actor, { action: "approver_group.create", targetType: "approver_group", targetId: row.id, tenantId: t.id, after: { name: row.name } });
    return { id: row.id, tenantId: row.tenantId, name: row.name, createdAt: row.createdAt.toISOString(), members: [] };
  });
}

async function loadGroup(ctx: Ctx, groupId: string) {
  const [g] = await ctx.db.select().from(approverGroups).where(eq(approverGroups.id, groupId));
  if (!g || !can(ctx.actor, "tenants.read", g.tenantId)) throw notFound("Approver group");
  if (!can(ctx.actor, "members.write", g.tenantId)) throw forbidden();
  return g;
}

export async function deleteGroup(ctx: Ctx, groupId: string) {
  const g = await loadGroup(ctx, groupId);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(approverGroups).where(eq(approverGroups.id, g.id));
    await recordEvent(tx, ctx.actor, { action: "approver_group.delete", targetType: "approver_group", targetId: g.id, tenantId: g.tenantId, before: { name: g.name } });
  });
}

/** Adds a user (by e-mail) who holds a role in the group's tenant (a member of the tenant, or an owner). */
export async function addGroupMember(ctx: Ctx, groupId: string, input: z.infer<typeof groupMemberInput>) {
  const g = await loadGroup(ctx, groupId);
  const [u] = await ctx.db.select().from(users).where(eq(users.email, input.email));
  if (!u) throw new AppError("validation_failed", "No such user", [{ path: "email", message: "no user has this e-mail" }]);
  const [m] = await ctx.db
    .select()
    .from(memberships)
    .where(and(eq(memberships.tenantId, g.tenantId), eq(memberships.userId, u.id)));
  if (!m && u.role !== "owner") throw new AppError("validation_failed", "This user holds no role in the group's tenant", [{ path: "email", message: "invite the user to the tenant first" }]);
  await ctx.db.transaction(async (tx) => {
    await tx.insert(approverGroupMembers).values({ groupId: g.id, userId: u.id }).onConflictDoNothing();
    await recordEvent(tx, ctx.actor, {
      action: "approver_group.add_member",
      targetType: "approver_group",
      targetId: g.id,
      tenantId: g.tenantId,
      after: { name: g.name, userId: u.id, email: u.email },
    });
  });
  return { groupId: g.id, userId: u.id, email: u.email };
}

export async function removeGroupMember(ctx: Ctx, groupId: string, userId: string) {
  const g = await loadGroup(ctx, groupId);
  await ctx.db.transaction(async (tx) => {
    const gone = await tx
      .delete(approverGroupMembers)
      .where(and(eq(approverGroupMembers.groupId, g.id), eq(approverGroupMembers.userId, userId)))
      .returning();
    if (!gone.length) throw notFound("Group member");
    await recordEvent(tx, ctx.actor, { action: "approver_group.remove_member", targetType: "approver_group", targetId: g.id, tenantId: g.tenantId, before: { name: g.name, userId } });
  });
}
