import { eq } from "drizzle-orm";
import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { Shell } from "@/components/shell/shell";
import { users } from "@/db/schema";
import { currentActor } from "@/lib/auth/session";
import { getDb } from "@/lib/db";
import { pageQuery } from "@/lib/pagination";
import { listTenants } from "@/lib/tenants/service";

export const dynamic = "force-dynamic";

export default async function DashboardLayout({ children }: { children: ReactNode }) {
  const actor = await currentActor();
  if (!actor) redirect("/login");
  const db = await getDb();
  const [user] = await db.select().from(users).where(eq(users.id, actor.userId));
  const tenants = await listTenants({ db, actor }, pageQuery.parse({ pageSize: 100 }));
  return (
    <Shell
      me={{
        email: user?.email ?? actor.label,
        globalRole: actor.globalRole,
        mustChangePassword: user?.mustChangePassword ?? false,
        tenants: tenants.items.map((t) => ({ id: t.id, name: t.name, status: t.status, role: actor.globalRole === "owner" ? "owner" : (actor.tenantRoles.get(t.id) ?? "auditor") })),
      }}
    >
      {children}
    </Shell>
  );
}
