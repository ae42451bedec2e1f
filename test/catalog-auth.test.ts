/**
 * Authenticated catalogue import (issue 13 part 2): the import calls the real
 * sandbox upstream (which requires a credential) with the vault entry of the
 * server's owning tenant, through the egress guard; errors say what failed
 * without the upstream's body; every read of the secret is in the trail; a
 * suspended entry is never sent (the sandbox's request log proves it). OAuth
 * client credentials are exchanged at the sandbox oidc-provider.
 */
import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "@/db/schema";
import type { Kek } from "@/lib/bundles/signing";
import { importCatalog } from "@/lib/catalog/service";
import { createServer, getServer, updateServer } from "@/lib/servers/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createEntry, rotateEntry } from "@/lib/vault/service";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { registerClient } from "./auth-server-helpers";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";
import { startSandbox, type Sandbox } from "./sandbox";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const ring = () => [kek];
const KEY = `good-key-${randomBytes(8).toString("hex")}`;
const WRONG = `wrong-key-${randomBytes(8).toString("hex")}`;

interface LogLine {
  method: string;
  authorization: string | null;
  apiKey: string | null;
  query: string;
  accepted: boolean;
  client: string | null;
}

let t: TestDb;
let sandbox: Sandbox;
let as: AuthServer;
let owner: MadeUser;
let admin: MadeUser;
let tenantA: string;
let tenantB: string;

async function setKeys(header: string, keys: string[]) {
  const res = await fetch(`${sandbox.base}/_sandbox/api-keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ header, keys }) });
  expect(res.status).toBe(200);
}
async function log(): Promise<LogLine[]> {
  return ((await (await fetch(`${sandbox.base}/_sandbox/authorization-log`)).json()) as { requests: LogLine[] }).requests;
}
async function newServer(upstreamUrl = sandbox.url, sharedWith: string[] = []) {
  const id = uniq();
  return createServer(
    sharedWith.length ? owner.ctx : admin.ctx,
    createServerInput.parse({ tenantId: tenantA, tenantIds: sharedWith, name: `Auth import ${id}`, resourceUri: `https://auth-${id}.example.com/mcp`, upstreamUrl, scopes: ["tickets.read"] }),
  );
}
const lastError = async (serverId: string) => (await getServer(admin.ctx, serverId)).lastImportError;
const reads = async (entryId: string) =>
  t.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, "vault.read"), eq(auditEvents.targetId, entryId)));

beforeAll(async () => {
  [t, sandbox] = await Promise.all([createTestDb(), startSandbox()]);
  as = await startAuthServer({ resources: { [sandbox.url]: { scopes: ["tickets:read"] } } });
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  admin = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
}, 60_000);
afterAll(async () => {
  await Promise.all([t?.close(), sandbox?.stop(), as?.stop()]);
});

describe("authenticated catalogue import", () => {
  it("without a vault entry, a 401 asks for the credential in the vault, and no upstream body is stored", async () => {
    await setKeys("x-api-key", [KEY]);
    const server = await newServer();
    const err = await expectAppError(importCatalog(admin.ctx, server.id, ring), "upstream_error");
    expect(err.message).toMatch(/store the upstream credential in the vault/);
    const stored = await lastError(server.id);
    expect(stored).toMatch(/store the upstream credential in the vault/);
    expect(stored).not.toMatch(/check the url/i);
    // The sandbox's 401 body says "API key required in x-api-key": never echoed.
    expect(stored).not.toMatch(/API key required|invalid API key|jsonrpc/);
  });

  it("with the owning tenant's entry the import succeeds, the key reached the upstream, and the read is audited without the value", async () => {
    await setKeys("x-api-key", [KEY]);
    const server = await newServer(sandbox.url, [tenantB]);
    // Another tenant's entry on the same server is never the one import uses.
    await createEntry(owner.ctx, { serverId: server.id, tenantId: tenantB, name: "B key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: WRONG }, kek);
    const entry = await createEntry(admin.ctx, { serverId: server.id, tenantId: tenantA, name: "A key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY }, kek);
    const from = (await log()).length;
    const summary = await importCatalog(admin.ctx, server.id, ring);
    expect(summary.added.length).toBe(5);
    expect(await lastError(server.id)).toBeNull();
    const seen = (await log()).slice(from).filter((r) => r.client === "mandate-catalog");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.apiKey === KEY && r.accepted)).toBe(true);
    const trail = await reads(entry.id);
    expect(trail).toHaveLength(1);
    expect(trail[0]!.tenantId).toBe(tenantA);
    expect(trail[0]!.actorType).toBe("user");
    const all = JSON.stringify(await t.db.select().from(auditEvents));
    expect(all).not.toContain(KEY);
    expect(all).not.toContain(WRONG);
  });

  it("a wrong key: the upstream refused the credential, naming the vault entry", async () => {
    await setKeys("x-api-key", [KEY]);
    const server = await newServer();
    await createEntry(admin.ctx, { serverId: server.id, tenantId: tenantA, name: "stale key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: WRONG }, kek);
    const err = await expectAppError(importCatalog(admin.ctx, server.id, ring), "upstream_error");
    expect(err.message).toMatch(/The upstream refused the credential of the vault entry "stale key" \(HTTP 401/);
    const stored = await lastError(server.id);
    expect(stored).toBe(err.message);
    expect(stored).not.toContain(WRONG);
    expect(stored).not.toMatch(/invalid API key|jsonrpc/);
  });

  it("an API key in the query: sent there, and never in the stored error", async () => {
    await setKeys("api-key", [KEY]);
    const server = await newServer();
    const shared = await createEntry(owner.ctx, { serverId: server.id, tenantId: null, name: "shared query key", kind: "api_key", placement: { in: "query", name: "api-key" }, secret: KEY }, kek);
    const from = (await log()).length;
    await importCatalog(admin.ctx, server.id, ring);
    const seen = (await log()).slice(from).filter((r) => r.client === "mandate-catalog");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.apiKey === KEY && r.query.includes("api-key="))).toBe(true);

    // Rotated to a wrong value: the error names the entry and holds no query value.
    await rotateEntry(owner.ctx, shared.id, { secret: WRONG }, kek);
    const err = await expectAppError(importCatalog(admin.ctx, server.id, ring), "upstream_error");
    expect(err.message).toMatch(/refused the credential of the vault entry "shared query key"/);
    expect(err.message).not.toContain(WRONG);
  });

  it("a suspended entry (the upstream moved) is never sent: import fails clearly and the sandbox saw no request with it", async () => {
    await setKeys("x-api-key", [KEY]);
    const server = await newServer();
    await createEntry(admin.ctx, { serverId: server.id, tenantId: tenantA, name: "moved key", kind: "api_key", placement: { in: "header", name: "x-api-key" }, secret: KEY }, kek);
    // Same sandbox, another origin (localhost instead of 127.0.0.1): the entry is suspended.
    await updateServer(admin.ctx, server.id, { upstreamUrl: sandbox.url.replace("127.0.0.1", "localhost") }, kek);
    const from = (await log()).length;
    const err = await expectAppError(importCatalog(admin.ctx, server.id, ring), "conflict");
    expect(err.message).toMatch(/"moved key" is suspended since the upstream moved.*confirm it for the new origin/);
    expect(await lastError(server.id)).toBe(err.message);
    const after = (await log()).slice(from);
    expect(after.filter((r) => r.apiKey === KEY)).toEqual([]);
    expect(after).toEqual([]);
  });

  it("bearer and basic go into the authorization header as the agent places them", async () => {
    const token = `tok-${randomBytes(8).toString("hex")}`;
    await setKeys("authorization", [`Bearer ${token}`]);
    const bearerServer = await newServer();
    await createEntry(admin.ctx, { serverId: bearerServer.id, tenantId: tenantA, name: "bearer", kind: "bearer", secret: token }, kek);
    expect((await importCatalog(admin.ctx, bearerServer.id, ring)).added.length).toBe(5);

    const password = `pw-${randomBytes(8).toString("hex")}`;
    await setKeys("authorization", [`Basic ${Buffer.from(`svc:${password}`).toString("base64")}`]);
    const basicServer = await newServer();
    await createEntry(admin.ctx, { serverId: basicServer.id, tenantId: tenantA, name: "basic", kind: "basic", secret: { username: "svc", password } }, kek);
    expect((await importCatalog(admin.ctx, basicServer.id, ring)).added.length).toBe(5);
  });

  it("OAuth client credentials: exchanged at the sandbox AS through the egress guard, the access token reaches the upstream", async () => {
    await setKeys("x-api-key", []);
    const reg = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], token_endpoint_auth_method: "client_secret_basic", scope: "tickets:read" });
    const server = await newServer();
    await createEntry(
      admin.ctx,
      {
        serverId: server.id,
        tenantId: tenantA,
        name: "oauth",
        kind: "oauth_client_credentials",
        secret: { clientSecret: reg.client_secret! },
        oauth: { tokenUrl: `${as.issuer}/token`, clientId: reg.client_id, scope: "tickets:read", audience: sandbox.url, authMethod: "client_secret_basic" },
      },
      kek,
    );
    const from = (await log()).length;
    await importCatalog(admin.ctx, server.id, ring);
    const seen = (await log()).slice(from).filter((r) => r.client === "mandate-catalog");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => /^Bearer [\w.-]{20,}$/.test(r.authorization ?? ""))).toBe(true);
    expect(JSON.stringify(seen)).not.toContain(reg.client_secret!);

    // A wrong client secret: the token endpoint's refusal, naming the entry; the upstream is not called.
    const bad = await newServer();
    await createEntry(
      admin.ctx,
      {
        serverId: bad.id,
        tenantId: tenantA,
        name: "oauth wrong",
        kind: "oauth_client_credentials",
        secret: { clientSecret: "not-the-secret" },
        oauth: { tokenUrl: `${as.issuer}/token`, clientId: reg.client_id, scope: "tickets:read", audience: sandbox.url, authMethod: "client_secret_basic" },
      },
      kek,
    );
    const before = (await log()).length;
    const err = await expectAppError(importCatalog(admin.ctx, bad.id, ring), "upstream_error");
    expect(err.message).toMatch(/token endpoint refused the client credentials of the vault entry "oauth wrong"/);
    expect((await log()).length).toBe(before);
  });
});
