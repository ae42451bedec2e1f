/**
 * Test databases. With DATABASE_URL (a local PostgreSQL server only) every
 * call creates and migrates a fresh database `mandate_t_<hex>` and drops it on
 * close; without it, an in-memory PGlite. Plus helpers that build real users,
 * memberships and tenants, so services run against actors derived from rows.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { openDatabase, type Db, type DbHandle } from "@/db/client";
import { memberships, users, type GlobalRole, type TenantRole, type User } from "@/db/schema";
import { actorForUser } from "@/lib/auth/actors";
import { hashPassword } from "@/lib/auth/password";
import type { Actor } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { newId } from "@/lib/ids";
import { createTenant } from "@/lib/tenants/service";

export interface TestDb {
  db: Db;
  driver: "pglite" | "postgres";
  /** The underlying handle (for LISTEN). */
  handle: DbHandle;
  /** The URL of this test database on PostgreSQL (to open more connections to it); undefined on PGlite. */
  url?: string;
  close(): Promise<void>;
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/** A short random suffix for names that must be unique across tests. */
export const uniq = (prefix = "") => `${prefix}${randomBytes(4).toString("hex")}`;

/** Refuses any PostgreSQL server but a local one: tests create and drop databases. */
export function assertLocalDatabaseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("DATABASE_URL is not a valid URL");
  }
  if (!/^postgres(ql)?:$/.test(u.protocol)) throw new Error(`DATABASE_URL must be a postgres:// URL, got ${u.protocol}`);
  if (!LOCAL_HOSTS.has(u.hostname)) {
    throw new Error(`Refusing to run tests against a non-local database host "${u.hostname}" (tests create and drop databases)`);
  }
  return u;
}

/** A fresh, migrated database for one test file. */
export async function createTestDb(): Promise<TestDb> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const h = await openDatabase({ dataDir: "memory://" });
    return { db: h.db, driver: h.driver, handle: h, close: h.close };
  }
  const base = assertLocalDatabaseUrl(url);
  const name = `mandate_t_${randomBytes(6).toString("hex")}`;
  const admin = () => postgres(base.toString(), { max: 1, onnotice: () => {} });
  const a = admin();
  try {
    await a.unsafe(`create database "${name}"`);
  } finally {
    await a.end({ timeout: 5 });
  }
  const target = new URL(base.toString());
  target.pathname = `/${name}`;
  let h: Awaited<ReturnType<typeof openDatabase>>;
  try {
    h = await openDatabase({ url: target.toString(), max: 4 });
  } catch (err) {
    await dropDatabase(admin, name);
    throw err;
  }
  let closed = false;
  return {
    db: h.db,
    driver: h.driver,
    handle: h,
    url: target.toString(),
    async close() {
      if (closed) return;
      closed = true;
      await h.close();
      await dropDatabase(admin, name);
    },
  };
}

async function dropDatabase(admin: () => postgres.Sql, name: string) {
  const a = admin();
  try {
    await a.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await a.end({ timeout: 5 });
  }
}

export interface MadeUser {
  user: User;
  actor: Actor;
  ctx: Ctx;
  /** The plain password, when one was set. */
  password: string | null;
}

/**
 * Inserts a user with a global role and tenant memberships and returns the
 * actor the product derives from those rows.
 */
export async function makeUser(
  db: Db,
  opts: {
    role?: GlobalRole;
    memberships?: [tenantId: string, role: TenantRole][];
    password?: string;
    email?: string;
    disabled?: boolean;
  } = {},
): Promise<MadeUser> {
  const id = newId("user");
  const [user] = await db
    .insert(users)
    .values({
      id,
      email: opts.email ?? `${uniq("u-")}@test.example`,
      name: "Test user",
      role: opts.role ?? "member",
      passwordHash: opts.password ? await hashPassword(opts.password) : null,
      disabled: opts.disabled ?? false,
    })
    .returning();
  if (opts.memberships?.length) {
    await db.insert(memberships).values(opts.memberships.map(([tenantId, role]) => ({ tenantId, userId: id, role })));
  }
  const actor = await actorForUser(db, user!);
  return { user: user!, actor, ctx: { db, actor }, password: opts.password ?? null };
}

/** The actor of a user as the product would resolve it now (after role or membership changes). */
export async function actorOf(db: Db, userId: string): Promise<Actor> {
  const [user] = await db.select().from(users).where(eq(users.id, userId));
  if (!user) throw new Error(`no user ${userId}`);
  return actorForUser(db, user);
}

/** Creates a tenant through the service, as the given (owner) actor. */
export async function makeTenant(db: Db, owner: Actor, name = uniq("Tenant ")) {
  return createTenant({ db, actor: owner }, { name });
}
