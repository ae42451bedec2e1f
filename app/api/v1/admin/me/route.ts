import { eq } from "drizzle-orm";
import { users } from "@/db/schema";
import { publicUser } from "@/lib/auth/users";
import { api } from "@/lib/http/api";
import { pageQuery } from "@/lib/pagination";
import { listTenants } from "@/lib/tenants/service";

// GET /api/v1/admin/me - who is acting, and the tenants they can reach
export const GET = api({}, async ({ ctx }) => {
  const [user] = await ctx.db.select().from(users).where(eq(users.id, ctx.actor.userId));
  const tenants = await listTenants(ctx, pageQuery.parse({ pageSize: 100 }));
  return {
    actor: { type: ctx.actor.type, id: ctx.actor.id, label: ctx.actor.label, globalRole: ctx.actor.globalRole },
    user: user ? publicUser(user) : null,
    tenants: tenants.items.map((t) => ({ ...t, role: ctx.actor.globalRole === "owner" ? "owner" : (ctx.actor.tenantRoles.get(t.id) ?? "auditor") })),
  };
});
