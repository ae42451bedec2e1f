/**
 * Migration 0004 backfills tenant trust from the old per-server issuers:
 * each server's owner and every tenant it is shared with trusts each of the
 * server's issuers, mapped by the old tenant claim to its own id only, so
 * tokens keep the tenant they had and a tenant claim naming a tenant the
 * server does not admit still gets nothing. The real SQL on real PostgreSQL
 * (DATABASE_URL), else on PGlite like the rest of the suite.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TenantIssuer } from "@/db/schema";
import { trustOf } from "@/lib/bundles/trust";
import type { BundleServer } from "@/lib/enforcement/bundle";
import { TokenValidator } from "@/lib/enforcement/token";
import { startIssuer, type Issuer } from "./agent-proc-harness";
import { assertLocalDatabaseUrl } from "./db";

const url = process.env.DATABASE_URL;
const dir = path.join(__dirname, "..", "db", "migrations");
const files = readdirSync(dir)
  .filter((f) => /^\d{4}_.*\.sql$/.test(f))
  .sort();
const statements = (f: string) =>
  readFileSync(path.join(dir, f), "utf8")
    .split("--> statement-breakpoint")
    .map((s) => s.trim())
    .filter(Boolean);

/** Runs SQL text and parameterless queries on either engine. */
interface Runner {
  exec(text: string): Promise<void>;
  rows<T>(text: string): Promise<T[]>;
  close(): Promise<void>;
}
let db: Runner;
let name: string;
let issuer: Issuer;
const admin = () => postgres(assertLocalDatabaseUrl(url!).toString(), { max: 1, onnotice: () => {} });

beforeAll(async () => {
  issuer = await startIssuer();
  if (!url) {
    const pg = new PGlite();
    db = { exec: async (t) => void (await pg.exec(t)), rows: async <T>(t: string) => (await pg.query<T>(t)).rows, close: () => pg.close() };
    return;
  }
  name = `mandate_t_${randomBytes(6).toString("hex")}`;
  const a = admin();
  await a.unsafe(`create database "${name}"`);
  await a.end({ timeout: 5 });
  const target = new URL(url);
  target.pathname = `/${name}`;
  const sql = postgres(target.toString(), { max: 1, onnotice: () => {} });
  db = { exec: async (t) => void (await sql.unsafe(t)), rows: async <T>(t: string) => (await sql.unsafe(t)) as unknown as T[], close: () => sql.end({ timeout: 5 }) };
});
afterAll(async () => {
  await issuer?.close();
  await db?.close();
  if (!url || !name) return;
  const a = admin();
  await a.unsafe(`drop database if exists "${name}" with (force)`);
  await a.end({ timeout: 5 });
});

describe("migration 0004 (tenant_issuers backfill)", () => {
  it("gives the owner and every shared tenant the server's issuers, mapped to themselves only; old tokens keep their tenant", async () => {
    const before = files.filter((f) => f < "0004");
    for (const f of before) for (const s of statements(f)) await db.exec(s);
    await db.exec(`insert into tenants (id, name, slug) values ('ten_a','A','a'), ('ten_b','B','b'), ('ten_c','C','c')`);
    const iss = [
      {
        issuer: issuer.issuer,
        jwksUri: issuer.jwksUri,
        discovery: false,
        algorithms: ["ES256"],
        claims: { tenant: "org", user: "sub", client: "client_id", scopes: "scope" },
        revocationEndpoint: "https://as.example/revoke",
      },
      { issuer: "https://other.example", discovery: true, algorithms: ["RS256"], claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope" } },
    ];
    await db.exec(
      `insert into servers (id, tenant_id, name, resource_uri, upstream_url, issuers) values ('srv_1', 'ten_a', 's1', 'http://127.0.0.1:9/mcp', 'http://127.0.0.1:9/up', '${JSON.stringify(iss).replaceAll("'", "''")}'::jsonb)`,
    );
    await db.exec(`insert into server_tenants (server_id, tenant_id) values ('srv_1','ten_a'), ('srv_1','ten_b')`);
    for (const f of files.filter((f) => f.startsWith("0004"))) for (const s of statements(f)) await db.exec(s);

    const rows = await db.rows<{
      tenant_id: string;
      issuer: string;
      jwks_uri: string | null;
      discovery: boolean;
      algorithms: string[];
      claims: TenantIssuer["claims"];
      tenant_mapping: TenantIssuer["tenantMapping"];
      revocation_endpoint: string | null;
      id: string;
    }>("select * from tenant_issuers order by tenant_id, issuer");
    expect(rows.map((r) => [r.tenant_id, r.issuer])).toEqual([
      ["ten_a", issuer.issuer],
      ["ten_a", "https://other.example"],
      ["ten_b", issuer.issuer],
      ["ten_b", "https://other.example"],
    ]);
    for (const r of rows) expect(r.id).toMatch(/^tis_[0-9a-f]{32}$/);
    expect(rows[0]).toMatchObject({
      jwks_uri: issuer.jwksUri,
      discovery: false,
      algorithms: ["ES256"],
      claims: { user: "sub", client: "client_id", scopes: "scope", groups: "groups" },
      tenant_mapping: { mode: "claim", claim: "org", values: ["ten_a"] },
      revocation_endpoint: "https://as.example/revoke",
    });
    expect(rows[3]).toMatchObject({ tenant_mapping: { mode: "claim", claim: "tenant", values: ["ten_b"] }, discovery: true, jwks_uri: null });

    // The backfilled trust, as the bundle carries it, admits old tokens for the tenant they named, and no other.
    const entries = trustOf(
      rows.map((r) => ({
        id: r.id,
        tenantId: r.tenant_id,
        issuer: r.issuer,
        jwksUri: r.jwks_uri,
        discovery: r.discovery,
        algorithms: r.algorithms,
        claims: r.claims,
        tenantMapping: r.tenant_mapping,
        requireTyp: null,
        revocationEndpoint: r.revocation_endpoint,
        createdAt: new Date(),
        updatedAt: new Date(),
      })),
      ["ten_a", "ten_b"],
    );
    const resource = "http://127.0.0.1:9/mcp";
    const server: BundleServer = {
      id: "srv_1",
      name: "s1",
      tenantId: "ten_a",
      tenantIds: ["ten_a", "ten_b"],
      resourceUri: resource,
      upstreamUrl: "http://127.0.0.1:9/up",
      scopes: [],
      issuers: [],
      trust: entries,
      prm: { resource, authorization_servers: [], scopes_supported: [], bearer_methods_supported: ["header"] },
    };
    const v = new TokenValidator();
    for (const t of ["ten_a", "ten_b"]) {
      const r = await v.validate(await issuer.sign({ sub: "u1", org: t, scope: "x" }, resource), server);
      expect(r.ok && r.principal.tenantId, JSON.stringify(r)).toBe(t);
    }
    const c = await v.validate(await issuer.sign({ sub: "u1", org: "ten_c" }, resource), server);
    expect(c.ok).toBe(false);
  }, 180_000);
});
