import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { apiTokens, auditEvents } from "@/db/schema";
import { actorForApiToken, parseApiToken } from "@/lib/auth/actors";
import { createApiToken, createTokenInput, listApiTokens, revokeApiToken } from "@/lib/auth/tokens";
import { updateUser } from "@/lib/auth/users";
import { createServer, getServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { removeMember, updateMember } from "@/lib/tenants/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let owner: MadeUser;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
});
afterAll(async () => {
  await t?.close();
});

async function tenantWithAdmin() {
  const tenant = await makeTenant(t.db, owner.actor);
  const admin = await makeUser(t.db, { memberships: [[tenant.id, "admin"]] });
  return { tenant, admin };
}
const tokenInput = (v: Record<string, unknown>) => createTokenInput.parse({ name: uniq("tok-"), ...v });

describe("API tokens", () => {
  it("a tenant admin creates an admin token; only its SHA-256 is stored", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const created = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id }));
    expect(created.token).toMatch(/^mdt_[0-9a-f]{32}\.[A-Za-z0-9_-]{43}$/);
    const parsed = parseApiToken(created.token)!;
    expect(parsed.id).toBe(created.id);
    expect(created).toMatchObject({ role: "admin", tenantId: tenant.id, createdBy: admin.user.id, hint: `mdt_…${parsed.secret.slice(-4)}`, revokedAt: null });

    const [row] = await t.db.select().from(apiTokens).where(eq(apiTokens.id, created.id));
    expect(row!.secretHash).toBe(createHash("sha256").update(parsed.secret).digest("hex"));
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(parsed.secret);
    expect(stored).not.toContain(parsed.secret.slice(0, 16));
    // Nor in the trail, nor in listings.
    const events = await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, created.id));
    expect(events.map((e) => e.action)).toEqual(["token.create"]);
    expect(JSON.stringify(events)).not.toContain(parsed.secret);
    const listed = await listApiTokens(admin.ctx);
    expect(listed.map((x) => x.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(parsed.secret);
  });

  it("actorForApiToken accepts the token and acts with its role in its tenant only", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const other = await makeTenant(t.db, owner.actor);
    const { token, id } = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id }));
    const actor = await actorForApiToken(t.db, token);
    expect(actor).not.toBeNull();
    expect(actor).toMatchObject({ type: "token", id, userId: admin.user.id, globalRole: "member" });
    expect([...actor!.tenantRoles]).toEqual([[tenant.id, "admin"]]);
    const [row] = await t.db.select().from(apiTokens).where(eq(apiTokens.id, id));
    expect(row!.lastUsedAt).not.toBeNull();

    // The token works through the services, and stays inside its tenant.
    const ctx = { db: t.db, actor: actor! };
    const s = await createServer(
      ctx,
      createServerInput.parse({ tenantId: tenant.id, name: uniq("Tok "), resourceUri: `https://${uniq("tok-")}.example.com/mcp`, upstreamUrl: "https://up.example/mcp" }),
    );
    expect((await getServer(ctx, s.id)).id).toBe(s.id);
    await expectAppError(
      createServer(ctx, createServerInput.parse({ tenantId: other.id, name: uniq("Tok "), resourceUri: `https://${uniq("tok-")}.example.com/mcp`, upstreamUrl: "https://up.example/mcp" })),
      "validation_failed",
    );
    // A token cannot mint tokens.
    await expectAppError(createApiToken(ctx, tokenInput({ role: "auditor", tenantId: tenant.id })), "forbidden");
  });

  it("rejects malformed and modified tokens", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const { token } = await createApiToken(admin.ctx, tokenInput({ role: "auditor", tenantId: tenant.id }));
    const last = token.at(-1)!;
    const flipped = token.slice(0, -1) + (last === "A" ? "B" : "A");
    const [prefix, secret] = token.split(".") as [string, string];
    const otherId = `mdt_${"0".repeat(32)}.${secret}`;
    for (const bad of [flipped, `${prefix}.${secret.slice(0, -1)}`, otherId, token.replace("mdt_", "mdx_"), `${token} `, "", "mdt_", token.toUpperCase()]) {
      expect(await actorForApiToken(t.db, bad), bad).toBeNull();
    }
    expect(await actorForApiToken(t.db, token)).not.toBeNull();
  });

  it("rejects a revoked token; revoking twice is a conflict", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const { token, id } = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id }));
    expect(await actorForApiToken(t.db, token)).not.toBeNull();
    await revokeApiToken(admin.ctx, id);
    expect(await actorForApiToken(t.db, token)).toBeNull();
    const [row] = await t.db.select().from(apiTokens).where(eq(apiTokens.id, id));
    expect(row!.revokedAt).not.toBeNull();
    await expectAppError(revokeApiToken(admin.ctx, id), "conflict");
    await expectAppError(revokeApiToken(owner.ctx, id), "conflict");
    expect((await t.db.select().from(auditEvents).where(eq(auditEvents.targetId, id))).map((e) => e.action).sort()).toEqual(["token.create", "token.revoke"]);
  });

  it("other tenants' admins cannot revoke (or learn of) a token", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const { admin: otherAdmin } = await tenantWithAdmin();
    const { id, token } = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id }));
    await expectAppError(revokeApiToken(otherAdmin.ctx, id), "not_found");
    expect((await listApiTokens(otherAdmin.ctx)).map((x) => x.id)).not.toContain(id);
    expect(await actorForApiToken(t.db, token)).not.toBeNull();
  });

  it("rejects an expired token", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const { token, expiresAt } = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id, expiresInDays: 1 }));
    const expiry = new Date(expiresAt!);
    expect(expiry.getTime() - Date.now()).toBeGreaterThan(86_400_000 - 60_000);
    expect(expiry.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(await actorForApiToken(t.db, token, new Date(expiry.getTime() - 1000))).not.toBeNull();
    expect(await actorForApiToken(t.db, token, expiry)).toBeNull();
    expect(await actorForApiToken(t.db, token, new Date(Date.now() + 2 * 86_400_000))).toBeNull();
  });

  it("a token dies when its creator loses the tenant role, is demoted, or is disabled", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const removed = await createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: tenant.id }));
    expect(await actorForApiToken(t.db, removed.token)).not.toBeNull();
    await removeMember(owner.ctx, tenant.id, admin.user.id);
    expect(await actorForApiToken(t.db, removed.token)).toBeNull();

    // Admin token of a creator demoted to auditor: dead; their auditor token still works.
    const { tenant: t2, admin: admin2 } = await tenantWithAdmin();
    const adminTok = await createApiToken(admin2.ctx, tokenInput({ role: "admin", tenantId: t2.id }));
    const auditorTok = await createApiToken(admin2.ctx, tokenInput({ role: "auditor", tenantId: t2.id }));
    await updateMember(owner.ctx, t2.id, admin2.user.id, { role: "auditor" });
    expect(await actorForApiToken(t.db, adminTok.token)).toBeNull();
    const asAuditor = await actorForApiToken(t.db, auditorTok.token);
    expect([...asAuditor!.tenantRoles]).toEqual([[t2.id, "auditor"]]);

    // Disabled creator: every token dead.
    const { tenant: t3, admin: admin3 } = await tenantWithAdmin();
    const tok3 = await createApiToken(admin3.ctx, tokenInput({ role: "admin", tenantId: t3.id }));
    await updateUser(owner.ctx, admin3.user.id, { disabled: true });
    expect(await actorForApiToken(t.db, tok3.token)).toBeNull();
    await updateUser(owner.ctx, admin3.user.id, { disabled: false });
    expect(await actorForApiToken(t.db, tok3.token)).not.toBeNull();

    // An owner token dies when the owner is demoted.
    const owner2 = await makeUser(t.db, { role: "owner" });
    const ownerTok = await createApiToken(owner2.ctx, tokenInput({ role: "owner" }));
    expect((await actorForApiToken(t.db, ownerTok.token))?.globalRole).toBe("owner");
    await updateUser(owner.ctx, owner2.user.id, { role: "member" });
    expect(await actorForApiToken(t.db, ownerTok.token)).toBeNull();
  });

  it("nobody creates a token stronger than themselves", async () => {
    const { tenant, admin } = await tenantWithAdmin();
    const other = await makeTenant(t.db, owner.actor);
    const auditorA = await makeUser(t.db, { memberships: [[tenant.id, "auditor"]] });
    const globalAuditor = await makeUser(t.db, { role: "auditor" });

    await expectAppError(createApiToken(admin.ctx, tokenInput({ role: "owner" })), "forbidden");
    await expectAppError(createApiToken(admin.ctx, tokenInput({ role: "auditor" })), "forbidden");
    await expectAppError(createApiToken(admin.ctx, tokenInput({ role: "admin", tenantId: other.id })), "validation_failed");
    await expectAppError(createApiToken(auditorA.ctx, tokenInput({ role: "admin", tenantId: tenant.id })), "forbidden");
    await expectAppError(createApiToken(globalAuditor.ctx, tokenInput({ role: "owner" })), "forbidden");
    await expectAppError(createApiToken(globalAuditor.ctx, tokenInput({ role: "admin", tenantId: tenant.id })), "forbidden");

    // Allowed: an auditor's auditor token, a global auditor's global auditor token.
    const a1 = await createApiToken(auditorA.ctx, tokenInput({ role: "auditor", tenantId: tenant.id }));
    const a2 = await createApiToken(globalAuditor.ctx, tokenInput({ role: "auditor" }));
    const global = await actorForApiToken(t.db, a2.token);
    expect(global).toMatchObject({ globalRole: "auditor" });
    expect(await actorForApiToken(t.db, a1.token)).not.toBeNull();

    // The schema: owner tokens have no tenant, admin tokens need one.
    expect(createTokenInput.safeParse({ name: "x1", role: "owner", tenantId: tenant.id }).success).toBe(false);
    expect(createTokenInput.safeParse({ name: "x1", role: "admin" }).success).toBe(false);
    expect(createTokenInput.safeParse({ name: "x1", role: "auditor", expiresInDays: 0 }).success).toBe(false);
    expect(createTokenInput.safeParse({ name: "x1", role: "auditor", expiresInDays: 366 }).success).toBe(false);
  });
});
