/**
 * TokenValidator against real authorization servers (sandbox/auth-server.ts,
 * oidc-provider over real HTTP): the accept case and the rejection matrix.
 */
import { createPublicKey } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyPair, SignJWT } from "jose";
import { discoveryUrls } from "@/lib/enforcement/jwks";
import type { BundleServer, BundleTrust } from "@/lib/enforcement/bundle";
import { qualifiedUser, TokenValidator, type TokenResult } from "@/lib/enforcement/token";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { bundleServer, clientCredentialsToken, countingFetch, issuerConfig, OTHER_RESOURCE, RESOURCE, RESOURCES } from "./auth-server-helpers";

let as1: AuthServer;
let as2: AuthServer;

beforeAll(async () => {
  [as1, as2] = await Promise.all([startAuthServer({ resources: RESOURCES }), startAuthServer({ resources: RESOURCES })]);
});
afterAll(async () => {
  await Promise.all([as1?.stop(), as2?.stop()]);
});

const nowSec = () => Math.floor(Date.now() / 1000);
const server = () => bundleServer([issuerConfig(as1)]);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function expectRejected(r: TokenResult, token: string, match?: RegExp) {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.error).toBe("invalid_token");
  expect(r.description).not.toContain(token);
  for (const part of token.split(".")) if (part.length > 8) expect(r.description).not.toContain(part);
  if (match) expect(r.description).toMatch(match);
}

/** alice's token for RESOURCE, signed by as1, with overrides. */
const aliceClaims = (over: Record<string, unknown> = {}) => ({
  sub: "alice",
  tenant: "ten_demo",
  client_id: "cli_1",
  scope: "tickets:read",
  aud: RESOURCE,
  ...over,
});

describe("accepted", () => {
  it("accepts a client-credentials token from the real AS (resource indicator) and maps its claims", async () => {
    const { fetch, calls } = countingFetch();
    const v = new TokenValidator({ fetch });
    const { token, clientId } = await clientCredentialsToken(as1, RESOURCE, "tickets:read tickets:write");
    const r = await v.validate(token, server());
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.claims.aud).toBe(RESOURCE);
    expect(r.principal).toMatchObject({ issuer: as1.issuer, tenantId: "ten_acme", user: `${as1.issuer}#${clientId}`, subject: clientId, client: clientId, groups: [], actors: [] });
    expect(r.principal.scopes.sort()).toEqual(["tickets:read", "tickets:write"]);
    expect(r.principal.exp).toBeGreaterThan(nowSec());
    expect(r.principal.iat).toBeLessThanOrEqual(nowSec() + 1);
    // Discovered through RFC 8414 metadata, then the JWKS; both cached afterwards.
    expect(calls).toEqual([`${as1.issuer}/.well-known/oauth-authorization-server`, `${as1.issuer}/jwks`]);
    expect((await v.validate(token, server())).ok).toBe(true);
    expect(calls).toHaveLength(2);
  });

  it("maps groups, array scopes and the act delegation chain", async () => {
    const v = new TokenValidator();
    const token = await as1.mintToken(aliceClaims({ scope: ["tickets:read", "tickets:write"], groups: ["eng", "ops"], act: { sub: "agent-b", act: { sub: "agent-a" } } }));
    const r = await v.validate(token, server());
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.principal).toMatchObject({
      user: `${as1.issuer}#alice`,
      subject: "alice",
      tenantId: "ten_demo",
      client: "cli_1",
      scopes: ["tickets:read", "tickets:write"],
      groups: ["eng", "ops"],
      actors: ["agent-b", "agent-a"],
    });
  });

  it("accepts an aud array that contains the resource, and a configured jwksUri without discovery", async () => {
    const { fetch, calls } = countingFetch();
    const v = new TokenValidator({ fetch });
    const token = await as1.mintToken(aliceClaims({ aud: ["https://elsewhere.example/api", RESOURCE] }));
    const r = await v.validate(token, bundleServer([issuerConfig(as1, { discovery: false, jwksUri: as1.jwksUri })]));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(calls).toEqual([as1.jwksUri]);
  });

  it("honours the clock skew for nbf and iat", async () => {
    const v = new TokenValidator({ clockSkewSeconds: 60 });
    const token = await as1.mintToken(aliceClaims({ nbf: nowSec() + 30, iat: nowSec() + 30 }));
    expect((await v.validate(token, server())).ok).toBe(true);
  });

  it("maps custom claim names", async () => {
    const v = new TokenValidator();
    const token = await as1.mintToken(aliceClaims({ org: "ten_custom", email: "alice@example.com", azp: "cli_9", scp: ["a", "b"], tenant: undefined }));
    const r = await v.validate(token, bundleServer([issuerConfig(as1, { claims: { tenant: "org", user: "email", client: "azp", scopes: "scp" } })], RESOURCE, ["ten_custom"]));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (r.ok) expect(r.principal).toMatchObject({ tenantId: "ten_custom", user: `${as1.issuer}#alice@example.com`, client: "cli_9", scopes: ["a", "b"] });
  });
});

describe("rejected with invalid_token", () => {
  const v = new TokenValidator();

  it("expired", async () => {
    const token = await as1.mintToken(aliceClaims({ iat: nowSec() - 7200, exp: nowSec() - 3600 }));
    expectRejected(await v.validate(token, server()), token, /expired/);
  });

  it("expired beyond the skew but within it is still accepted", async () => {
    const ok = await as1.mintToken(aliceClaims({ iat: nowSec() - 600, exp: nowSec() - 30 }));
    expect((await v.validate(ok, server())).ok).toBe(true);
    const token = await as1.mintToken(aliceClaims({ iat: nowSec() - 600, exp: nowSec() - 90 }));
    expectRejected(await v.validate(token, server()), token, /expired/);
  });

  it("no exp", async () => {
    const token = await as1.mintToken(aliceClaims({ exp: undefined }));
    expectRejected(await v.validate(token, server()), token, /exp/);
  });

  it("not yet valid (nbf in the future)", async () => {
    const token = await as1.mintToken(aliceClaims({ nbf: nowSec() + 600 }));
    expectRejected(await v.validate(token, server()), token, /not valid yet/);
  });

  it("iat in the future", async () => {
    const token = await as1.mintToken(aliceClaims({ iat: nowSec() + 600, exp: nowSec() + 1200 }));
    expectRejected(await v.validate(token, server()), token, /future/);
  });

  it("wrong issuer: a token from a second real AS", async () => {
    const { token } = await clientCredentialsToken(as2, RESOURCE, "tickets:read");
    expectRejected(await v.validate(token, server()), token, /issuer is not trusted/);
  });

  it("wrong issuer: the second AS's key claiming the trusted issuer", async () => {
    const token = await as2.mintToken(aliceClaims({ iss: as1.issuer }), { header: { kid: "as2-key" } });
    expectRejected(await v.validate(token, server()), token);
  });

  it("wrong aud", async () => {
    const token = await as1.mintToken(aliceClaims({ aud: "https://api.example.com/mcp" }));
    expectRejected(await v.validate(token, server()), token, /aud/);
  });

  it("aud with a trailing slash is not the canonical resource URI", async () => {
    const token = await as1.mintToken(aliceClaims({ aud: `${RESOURCE}/` }));
    expectRejected(await v.validate(token, server()), token, /aud/);
  });

  it("aud of another server: a real token issued for another resource", async () => {
    const { token } = await clientCredentialsToken(as1, OTHER_RESOURCE, "other:read");
    expectRejected(await v.validate(token, server()), token, /aud/);
  });

  it("no aud", async () => {
    const token = await as1.mintToken(aliceClaims({ aud: undefined }));
    expectRejected(await v.validate(token, server()), token, /aud/);
  });

  it("alg none (unsigned), rejected before any key lookup", async () => {
    const { fetch, calls } = countingFetch();
    const fresh = new TokenValidator({ fetch });
    const token = `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...aliceClaims(), iss: as1.issuer, iat: nowSec(), exp: nowSec() + 300 })}.`;
    expectRejected(await fresh.validate(token, server()), token, /algorithm/);
    expect(calls).toEqual([]);
  });

  it("HS256 signed with the AS's public key as the HMAC secret (algorithm confusion)", async () => {
    const { fetch, calls } = countingFetch();
    const fresh = new TokenValidator({ fetch });
    const pem = createPublicKey({ key: as1.publicJwk as never, format: "jwk" }).export({ type: "spki", format: "pem" });
    for (const secret of [Buffer.from(pem), Buffer.from(JSON.stringify(as1.publicJwk))]) {
      const token = await new SignJWT({ ...aliceClaims(), iss: as1.issuer }).setProtectedHeader({ alg: "HS256", kid: as1.publicJwk.kid }).setIssuedAt().setExpirationTime("5m").sign(secret);
      expectRejected(await fresh.validate(token, server()), token, /algorithm/);
    }
    expect(calls).toEqual([]);
  });

  it("an allowed-looking alg outside the issuer's list", async () => {
    const token = await as1.mintToken(aliceClaims(), { header: { alg: "RS256" } });
    expectRejected(await v.validate(token, bundleServer([issuerConfig(as1, { algorithms: ["ES256"] })])), token, /algorithm/);
  });

  it("bad signature (tampered payload)", async () => {
    const { token: good } = await clientCredentialsToken(as1, RESOURCE, "tickets:read");
    const [h, p, s] = good.split(".");
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
    const token = `${h}.${b64({ ...claims, scope: "tickets:read tickets:write", tenant: "ten_demo" })}.${s}`;
    expectRejected(await v.validate(token, server()), token, /signature/);
  });

  it("a foreign key reusing the AS's kid fails the signature", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const token = await new SignJWT({ ...aliceClaims(), iss: as1.issuer }).setProtectedHeader({ alg: "RS256", kid: as1.publicJwk.kid }).setIssuedAt().setExpirationTime("5m").sign(privateKey);
    expectRejected(await v.validate(token, server()), token, /signature/);
  });

  it("missing tenant or user claim", async () => {
    const noTenant = await as1.mintToken(aliceClaims({ tenant: undefined }));
    expectRejected(await v.validate(noTenant, server()), noTenant, /tenant/);
    const noUser = await as1.mintToken(aliceClaims({ sub: undefined }));
    expectRejected(await v.validate(noUser, server()), noUser, /user/);
  });

  it("garbage", async () => {
    for (const token of ["", "abc", "a.b", "a.b.c.d", "eyJ.eyJ.sig", `${b64({ alg: "RS256" })}.not-json.x`]) {
      const r = await v.validate(token, server());
      expect(r.ok).toBe(false);
    }
  });
});

describe("unknown kid and the JWKS refresh budget", () => {
  it("refreshes once on an unknown kid, then rejects; no second fetch within the interval", async () => {
    let clock = Date.now();
    const { fetch, calls } = countingFetch();
    const v = new TokenValidator({ fetch, now: () => clock, minRefreshIntervalMs: 30_000 });
    const jwksFetches = () => calls.filter((c) => c === as1.jwksUri).length;

    const good = await as1.mintToken(aliceClaims());
    expect((await v.validate(good, server())).ok).toBe(true);
    expect(jwksFetches()).toBe(1);

    const rogue = await generateKeyPair("RS256");
    const rogueToken = (kid: string) => new SignJWT({ ...aliceClaims(), iss: as1.issuer }).setProtectedHeader({ alg: "RS256", kid }).setIssuedAt().setExpirationTime("10m").sign(rogue.privateKey);

    // Right after a fetch: the unknown kid does not trigger one.
    const t0 = await rogueToken("rogue-0");
    expectRejected(await v.validate(t0, server()), t0, /kid/);
    expect(jwksFetches()).toBe(1);

    clock += 31_000;
    const t1 = await rogueToken("rogue-1");
    expectRejected(await v.validate(t1, server()), t1, /kid/);
    expect(jwksFetches()).toBe(2);

    const t2 = await rogueToken("rogue-2");
    expectRejected(await v.validate(t2, server()), t2, /kid/);
    expect(jwksFetches()).toBe(2);
    // Discovery is not repeated for refreshes.
    expect(calls.filter((c) => c.includes("/.well-known/")).length).toBe(1);

    // Known keys keep working without fetches.
    expect((await v.validate(good, server())).ok).toBe(true);
    expect(jwksFetches()).toBe(2);

    // After the interval, one more refresh is allowed.
    clock += 31_000;
    const t3 = await rogueToken("rogue-3");
    expectRejected(await v.validate(t3, server()), t3, /kid/);
    expect(jwksFetches()).toBe(3);
  });

  it("concurrent unknown-kid tokens share one refresh", async () => {
    let clock = Date.now();
    const { fetch, calls } = countingFetch();
    const v = new TokenValidator({ fetch, now: () => clock });
    expect((await v.validate(await as1.mintToken(aliceClaims()), server())).ok).toBe(true);
    clock += 60_000;
    const rogue = await generateKeyPair("ES256");
    const tokens = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        new SignJWT({ ...aliceClaims(), iss: as1.issuer })
          .setProtectedHeader({ alg: "ES256", kid: `r${i}` })
          .setIssuedAt()
          .setExpirationTime("10m")
          .sign(rogue.privateKey),
      ),
    );
    const results = await Promise.all(tokens.map((t) => v.validate(t, server())));
    expect(results.every((r) => !r.ok)).toBe(true);
    expect(calls.filter((c) => c === as1.jwksUri).length).toBe(2);
  });

  it("an unreachable JWKS is invalid_token without leaking the token, and is not retried on every request", async () => {
    let clock = Date.now();
    const { fetch, calls } = countingFetch();
    const v = new TokenValidator({ fetch, now: () => clock });
    const srv = bundleServer([issuerConfig(as1, { discovery: false, jwksUri: "http://127.0.0.1:1/jwks" })]);
    const token = await as1.mintToken(aliceClaims());
    expectRejected(await v.validate(token, srv), token, /keys are unavailable/);
    expectRejected(await v.validate(token, srv), token, /keys are unavailable/);
    expect(calls).toHaveLength(1);
    clock += 6_000;
    expectRejected(await v.validate(token, srv), token, /keys are unavailable/);
    expect(calls).toHaveLength(2);
  });
});

describe("discovery", () => {
  it("tries RFC 8414 (path inserted), then OpenID Connect (path appended, then inserted)", () => {
    expect(discoveryUrls("http://127.0.0.1:3200")).toEqual(["http://127.0.0.1:3200/.well-known/oauth-authorization-server", "http://127.0.0.1:3200/.well-known/openid-configuration"]);
    expect(discoveryUrls("https://idp.example/tenants/t1")).toEqual([
      "https://idp.example/.well-known/oauth-authorization-server/tenants/t1",
      "https://idp.example/tenants/t1/.well-known/openid-configuration",
      "https://idp.example/.well-known/openid-configuration/tenants/t1",
    ]);
  });

  it("rejects metadata that names another issuer (RFC 8414 §3.3)", async () => {
    // as1 reached as "localhost": its metadata says 127.0.0.1, so it is not the configured issuer's.
    const issuer = as1.issuer.replace("127.0.0.1", "localhost");
    const token = await as1.mintToken(aliceClaims({ iss: issuer }));
    const r = await new TokenValidator().validate(token, bundleServer([issuerConfig(as1, { issuer })]));
    expectRejected(r, token, /another issuer/);
  });
});

describe("trust is granted by a tenant (issue 10 defect 1, issue 13 part 1)", () => {
  const A = "ten_a";
  const B = "ten_b";
  const entry = (as: AuthServer, tenantId: string, over: Partial<BundleTrust> = {}): BundleTrust => ({
    tenantId,
    issuer: as.issuer,
    discovery: false,
    jwksUri: as.jwksUri,
    algorithms: ["RS256"],
    claims: { user: "sub", client: "client_id", scopes: "scope", groups: "groups" },
    tenantMapping: { mode: "claim", claim: "tenant", values: [tenantId] },
    ...over,
  });
  // The server advertises both issuers (what its owner configures); only `trust` decides.
  const shared = (trust: BundleTrust[], tenantIds = [A, B]): BundleServer => ({
    ...bundleServer([issuerConfig(as1), issuerConfig(as2)], RESOURCE, tenantIds),
    trust,
  });
  const claims = (over: Record<string, unknown> = {}) => ({ sub: "alice", client_id: "cli_1", scope: "tickets:read", aud: RESOURCE, ...over });

  it("a token of an issuer trusted by tenant A that claims tenant B is refused; claiming A it acts for A", async () => {
    const v = new TokenValidator();
    const srv = shared([entry(as1, A), entry(as2, B)]);
    const forB = await as1.mintToken(claims({ tenant: B }));
    expectRejected(await v.validate(forB, srv), forB, /does not map to a tenant/);
    const forA = await as1.mintToken(claims({ tenant: A }));
    const r = await v.validate(forA, srv);
    expect(r.ok && r.principal.tenantId).toBe(A);
    // B's own issuer still works for B.
    const own = await as2.mintToken(claims({ tenant: B }));
    const rb = await v.validate(own, srv);
    expect(rb.ok && rb.principal.tenantId).toBe(B);
  });

  it("each tenant's own key source verifies its tokens: A's keys under B's issuer name cannot act for B", async () => {
    const v = new TokenValidator();
    // A (e.g. the server's owner) trusts as2's issuer identifier but with as1's keys, which it controls.
    const srv = shared([entry(as2, A, { jwksUri: as1.jwksUri }), entry(as2, B)]);
    const forged = await as1.mintToken(claims({ iss: as2.issuer, tenant: B }));
    expectRejected(await v.validate(forged, srv), forged, /signature|kid/);
    // The same keys act for A, the tenant that chose them.
    const forA = await as1.mintToken(claims({ iss: as2.issuer, tenant: A }));
    const r = await v.validate(forA, srv);
    expect(r.ok && r.principal.tenantId, JSON.stringify(r)).toBe(A);
  });

  it("trust of a tenant the server does not admit is ignored", async () => {
    const token = await as1.mintToken(claims({ tenant: "ten_c" }));
    expectRejected(await new TokenValidator().validate(token, shared([entry(as1, A), entry(as1, "ten_c")])), token, /does not map/);
  });

  it("a token that maps to two tenants is refused (ambiguity denies)", async () => {
    const v = new TokenValidator();
    const token = await as1.mintToken(claims({ tenant: A }));
    expectRejected(await v.validate(token, shared([entry(as1, A, { tenantMapping: { mode: "issuer" } }), entry(as1, B, { tenantMapping: { mode: "issuer" } })])), token, /more than one tenant/);
    // One of them by claim, the other by issuer: still two.
    expectRejected(await v.validate(token, shared([entry(as1, A), entry(as1, B, { tenantMapping: { mode: "issuer" } })])), token, /more than one tenant/);
  });

  it("when another mapped tenant's keys cannot be loaded, the token is refused (ambiguity cannot be ruled out)", async () => {
    const v = new TokenValidator();
    const token = await as1.mintToken(claims({ tenant: A }));
    const srv = shared([entry(as1, A), entry(as1, B, { tenantMapping: { mode: "issuer" }, jwksUri: "http://127.0.0.1:1/jwks" })]);
    expectRejected(await v.validate(token, srv), token, /keys are unavailable/);
    // B's broken key source does not touch tokens that do not map to B.
    const onlyA = shared([entry(as1, A), entry(as1, B, { jwksUri: "http://127.0.0.1:1/jwks" })]);
    expect((await v.validate(token, onlyA)).ok).toBe(true);
  });

  it("the same sub from two issuers is two users", async () => {
    const v = new TokenValidator();
    const srv = shared([entry(as1, A), entry(as2, A)], [A]);
    const r1 = await v.validate(await as1.mintToken(claims({ tenant: A })), srv);
    const r2 = await v.validate(await as2.mintToken(claims({ tenant: A })), srv);
    expect(r1.ok && r2.ok).toBe(true);
    if (!r1.ok || !r2.ok) return;
    expect(r1.principal.subject).toBe("alice");
    expect(r2.principal.subject).toBe("alice");
    expect(r1.principal.user).toBe(qualifiedUser(as1.issuer, "alice"));
    expect(r2.principal.user).toBe(qualifiedUser(as2.issuer, "alice"));
    expect(r1.principal.user).not.toBe(r2.principal.user);
  });

  it('requireTyp "at+jwt" refuses other typ values (RFC 9068); off by default', async () => {
    const v = new TokenValidator();
    const strict = shared([entry(as1, A, { requireTyp: "at+jwt" })]);
    const plain = await as1.mintToken(claims({ tenant: A }), { header: { typ: "JWT" } });
    expectRejected(await v.validate(plain, strict), plain, /at\+jwt/);
    const none = await as1.mintToken(claims({ tenant: A }), { header: { typ: undefined } });
    expectRejected(await v.validate(none, strict), none, /at\+jwt/);
    for (const typ of ["at+jwt", "application/at+jwt", "AT+JWT"]) {
      const ok = await as1.mintToken(claims({ tenant: A }), { header: { typ } });
      expect((await v.validate(ok, strict)).ok, typ).toBe(true);
    }
    expect((await v.validate(plain, shared([entry(as1, A)]))).ok).toBe(true);
  });

  it("maps a tenant by a nested claim path with array values, and by issuer; groups from a nested path", async () => {
    const v = new TokenValidator();
    const nested = entry(as1, A, {
      tenantMapping: { mode: "claim", claim: "realm_access.roles", values: ["acme-admins"] },
      claims: { user: "sub", client: "azp", scopes: "scope", groups: "realm_access.roles" },
    });
    const srv = shared([nested, entry(as2, B, { tenantMapping: { mode: "issuer" } })]);
    const t1 = await as1.mintToken(claims({ realm_access: { roles: ["viewer", "acme-admins"] }, azp: "cli_9" }));
    const r1 = await v.validate(t1, srv);
    expect(r1.ok, JSON.stringify(r1)).toBe(true);
    if (r1.ok) expect(r1.principal).toMatchObject({ tenantId: A, client: "cli_9", groups: ["viewer", "acme-admins"] });
    const t2 = await as1.mintToken(claims({ realm_access: { roles: ["viewer"] } }));
    expectRejected(await v.validate(t2, srv), t2, /does not map/);
    // A literal claim name with dots (Auth0 style) is read as one claim.
    const literal = shared([entry(as1, A, { tenantMapping: { mode: "claim", claim: "https://acme.example/tenant", values: ["acme"] } })]);
    const t3 = await as1.mintToken(claims({ "https://acme.example/tenant": "acme" }));
    expect((await v.validate(t3, literal)).ok).toBe(true);
    // Inherited properties are not claims.
    const proto = shared([entry(as1, A, { tenantMapping: { mode: "claim", claim: "realm_access.constructor", values: ["function Object() { [native code] }"] } })]);
    const t4 = await as1.mintToken(claims({ realm_access: {} }));
    expectRejected(await v.validate(t4, proto), t4, /does not map/);
    // mode "issuer": every token of as2 is B, whatever it claims.
    const t5 = await as2.mintToken(claims({ tenant: A }));
    const r5 = await v.validate(t5, srv);
    expect(r5.ok && r5.principal.tenantId).toBe(B);
  });

  it("the revocation endpoint is the admitting tenant's own", async () => {
    const v = new TokenValidator();
    const srv = shared([entry(as1, A, { revocationEndpoint: "https://a.example/revoke" }), entry(as2, B, { revocationEndpoint: "https://b.example/revoke" })]);
    const r = await v.validate(await as2.mintToken(claims({ tenant: B })), srv);
    expect(r.ok && r.principal.revocationEndpoint).toBe("https://b.example/revoke");
  });
});
