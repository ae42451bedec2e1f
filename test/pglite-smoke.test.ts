// The embedded driver, always: this file ignores DATABASE_URL on purpose.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { count, eq, sql } from "drizzle-orm";
import { openDatabase, type DbHandle } from "@/db/client";
import { auditEvents, users } from "@/db/schema";
import { actorForUser } from "@/lib/auth/actors";
import { bootstrapOwner, changeOwnPassword, verifyCredentials } from "@/lib/auth/users";
import { addTool, addToolInput, getTool } from "@/lib/catalog/service";
import type { Ctx } from "@/lib/context";
import { getScopeMapping, putScopeMapping } from "@/lib/scopes/service";
import { createServer, getServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createTenant } from "@/lib/tenants/service";
import { listTrail, trailQuery } from "@/lib/trail/service";
import { expectAppError } from "./expect";

let h: DbHandle;
let ctx: Ctx;

beforeAll(async () => {
  h = await openDatabase({ dataDir: "memory://" });
});
afterAll(async () => {
  await h?.close();
});

describe("embedded PGlite smoke", () => {
  it("opens in memory with every migration applied", async () => {
    expect(h.driver).toBe("pglite");
    const tables = await h.db.execute<{ table_name: string }>(sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`);
    const names = (tables as unknown as { rows: { table_name: string }[] }).rows.map((r) => r.table_name);
    expect(names).toEqual(expect.arrayContaining(["api_tokens", "audit_events", "memberships", "scope_mappings", "server_tenants", "servers", "tenants", "tool_versions", "tools", "users"]));
    const applied = await h.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
    expect((applied as unknown as { rows: { n: number }[] }).rows[0]!.n).toBeGreaterThanOrEqual(1);
  });

  it("bootstraps the owner", async () => {
    let password = "";
    await bootstrapOwner(h.db, { email: "owner@smoke.test", announce: (_e, p) => (password = p) });
    expect(password).not.toBe("");
    const user = await verifyCredentials(h.db, "owner@smoke.test", password);
    expect(user).toMatchObject({ role: "owner", mustChangePassword: true });
    // Holding the printed one-time password, the owner can only choose its own (issue 17.7).
    const first = { db: h.db, actor: await actorForUser(h.db, user!) };
    await expectAppError(createTenant(first, { name: "Too early" }), "forbidden");
    await changeOwnPassword(first, { currentPassword: password, newPassword: "smoke-owner-password" });
    ctx = { db: h.db, actor: await actorForUser(h.db, (await verifyCredentials(h.db, "owner@smoke.test", "smoke-owner-password"))!) };
  });

  it("creates a tenant, a server, a tool and a scope mapping, and lists the trail", async () => {
    const tenant = await createTenant(ctx, { name: "Smoke Tenant" });
    await expectAppError(createTenant(ctx, { name: "Smoke Tenant" }), "conflict");

    const server = await createServer(
      ctx,
      createServerInput.parse({
        tenantId: tenant.id,
        name: "Smoke server",
        resourceUri: "HTTPS://Smoke.Example.com/mcp/",
        upstreamUrl: "http://127.0.0.1:9/mcp",
        scopes: ["smoke.read"],
      }),
    );
    expect(server.resourceUri).toBe("https://smoke.example.com/mcp");
    const dup = await expectAppError(
      createServer(ctx, createServerInput.parse({ tenantId: tenant.id, name: "Other", resourceUri: "https://smoke.example.com/mcp", upstreamUrl: "http://127.0.0.1:9/mcp" })),
      "conflict",
    );
    expect(dup.issues?.[0]?.path).toBe("resourceUri");
    expect((await getServer(ctx, server.id)).tenantIds).toEqual([tenant.id]);

    const tool = await addTool(ctx, server.id, addToolInput.parse({ name: "smoke_tool", description: "Does smoke.", inputSchema: { type: "object" } }));
    expect(tool.status).toBe("approved");
    expect((await getTool(ctx, tool.id)).history).toHaveLength(1);
    await expectAppError(addTool(ctx, server.id, addToolInput.parse({ name: "smoke_tool", inputSchema: { type: "object" } })), "conflict");

    expect(await putScopeMapping(ctx, server.id, { baseVersion: 0, mapping: { "smoke.read": ["smoke_tool"] } })).toEqual({ version: 1, mapping: { "smoke.read": ["smoke_tool"] } });
    await expectAppError(putScopeMapping(ctx, server.id, { baseVersion: 0, mapping: {} }), "conflict");
    expect((await getScopeMapping(ctx, server.id)).version).toBe(1);

    const [{ n }] = (await h.db.select({ n: count() }).from(auditEvents)) as [{ n: number }];
    const trail = await listTrail(ctx, trailQuery.parse({ limit: 2 }));
    expect(trail.items.map((e) => e.action)).toEqual(["scopes.update", "tool.add"]);
    expect(trail.nextCursor).not.toBeNull();
    const rest = await listTrail(ctx, trailQuery.parse({ limit: 200, cursor: trail.nextCursor! }));
    expect(rest.items.map((e) => e.action)).toEqual(["server.create", "tenant.create", "user.password_change", "user.bootstrap"]);
    expect(trail.items.length + rest.items.length).toBe(n);
    expect(await h.db.select({ n: count() }).from(users).where(eq(users.role, "owner"))).toEqual([{ n: 1 }]);
  });
});
