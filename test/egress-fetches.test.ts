/**
 * The other outbound fetches: a client ID metadata document goes through the
 * control plane's egress guard; issuer discovery refuses a plain-http
 * jwks_uri and reads key sets with a streaming cap.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { oauthClients } from "@/db/schema";
import { JwksCache, JwksUnavailable } from "@/lib/enforcement/jwks";
import { refreshClientMetadata } from "@/lib/grants/service";
import { newId } from "@/lib/ids";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

let t: TestDb;
let admin: MadeUser;
let tenantId: string;

beforeAll(async () => {
  t = await createTestDb();
  const owner = await makeUser(t.db, { role: "owner" });
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  admin = await makeUser(t.db, { memberships: [[tenantId, "admin"]] });
});
afterAll(async () => {
  await t?.close();
});

describe("client ID metadata documents go through the egress guard", () => {
  it.each([
    ["https://169.254.169.254/latest/meta-data/iam/security-credentials/", /metadata address/],
    ["https://10.20.30.40/client.json", /private address/],
    ["https://[fd00:ec2::254]/client.json", /metadata address/],
  ])("refuses %s before connecting", async (clientId, why) => {
    const id = newId("client");
    await t.db.insert(oauthClients).values({ id, tenantId, clientId, registration: "metadata_document" });
    const started = Date.now();
    const err = await expectAppError(refreshClientMetadata(admin.ctx, id), "upstream_error");
    expect(err.message).toMatch(why);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe("JWKS fetching", () => {
  const header = { alg: "RS256", kid: "k1" };
  const token = { payload: "", signature: "", protected: "" };
  const issuer = "https://issuer.example.com";

  it("refuses a discovered plain-http jwks_uri (not loopback) and never fetches it", async () => {
    const asked: string[] = [];
    const cache = new JwksCache({
      fetch: async (input) => {
        const url = String(input);
        asked.push(url);
        if (url.includes("/.well-known/")) return Response.json({ issuer, jwks_uri: "http://keys.example.com/jwks" });
        return Response.json({ keys: [] });
      },
    });
    const err = await cache.getKey({ issuer, discovery: true }, header, token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JwksUnavailable);
    expect((err as Error).message).toMatch(/plain-http jwks_uri/);
    expect(asked).not.toContain("http://keys.example.com/jwks");
  });

  it("uses a plain-http jwks_uri on loopback (local issuers)", async () => {
    const asked: string[] = [];
    const cache = new JwksCache({
      fetch: async (input) => {
        const url = String(input);
        asked.push(url);
        if (url.includes("/.well-known/")) return Response.json({ issuer, jwks_uri: "http://127.0.0.1:9/jwks" });
        return Response.json({ keys: [] });
      },
    });
    await cache.getKey({ issuer, discovery: true }, header, token).catch(() => undefined);
    expect(asked).toContain("http://127.0.0.1:9/jwks");
  });

  it("reads a key set with a streaming cap: an endless body costs at most the cap", async () => {
    let pulled = 0;
    const chunk = new TextEncoder().encode(`{"keys":[${'{"kty":"RSA"},'.repeat(4000)}`);
    const endless = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled += chunk.byteLength;
          // Far beyond any sane key set: a body read whole would pull all of it (or never end).
          if (pulled > 64 * 1024 * 1024) controller.close();
          else controller.enqueue(chunk);
        },
      });
    const cache = new JwksCache({ fetch: async () => new Response(endless(), { headers: { "content-type": "application/json" } }) });
    const err = await cache.getKey({ issuer, jwksUri: `${issuer}/jwks`, discovery: false }, header, token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JwksUnavailable);
    expect((err as Error).message).toMatch(/larger than/);
    expect(pulled).toBeLessThan(2 * 1024 * 1024);
  });
});
