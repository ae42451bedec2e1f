/**
 * Demo data for a fresh install: `npm run db:seed` (with the app stopped when
 * on PGlite). Creates the tenant "Acme Support" and registers the sandbox MCP
 * server (`npm run sandbox`, http://127.0.0.1:3100/mcp) with its scopes, and
 * imports its catalogue when the sandbox is running. Idempotent by name.
 */
import { eq } from "drizzle-orm";
import { actorForUser } from "@/lib/auth/actors";
import { importCatalog } from "@/lib/catalog/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTenant } from "@/lib/tenants/service";
import { openDatabase } from "./client";
import { servers, tenants, users } from "./schema";

const handle = await openDatabase({ url: process.env.DATABASE_URL, dataDir: process.env.MANDATE_DATA_DIR ?? ".data", max: 1 });
try {
  const db = handle.db;
  const [owner] = await db.select().from(users).where(eq(users.role, "owner")).limit(1);
  if (!owner) throw new Error("no owner yet: start the app once (npm start) so it creates the first owner");
  const ctx = { db, actor: await actorForUser(db, owner) };
  const [existing] = await db.select().from(tenants).where(eq(tenants.slug, "acme-support"));
  const tenant = existing ?? (await createTenant(ctx, { name: "Acme Support" }))!;
  const upstreamUrl = process.env.SANDBOX_URL ?? "http://127.0.0.1:3100/mcp";
  const [server] = await db.select().from(servers).where(eq(servers.resourceUri, "http://localhost:8080/mcp"));
  const s =
    server ??
    (await createServer(
      ctx,
      createServerInput.parse({ tenantId: tenant.id, name: "Ticket desk", resourceUri: "http://localhost:8080/mcp", upstreamUrl, scopes: ["tickets:read", "tickets:write", "tickets:admin"] }),
    ))!;
  try {
    const summary = await importCatalog(ctx, s.id);
    console.log(`[seed] imported ${summary.added.length} new tools from ${upstreamUrl}`);
  } catch {
    console.log(`[seed] sandbox not reachable at ${upstreamUrl}: start it with npm run sandbox, then import from the server's Tools tab`);
  }
  console.log(`[seed] tenant ${tenant.id}, server ${s.id}`);
} finally {
  await handle.close();
}
