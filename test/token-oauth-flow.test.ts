/**
 * The sandbox authorization server end to end, headless: dynamic client
 * registration, authorization code + PKCE with an RFC 8707 resource, the
 * automatic interaction route, refresh and revocation; the access tokens it
 * issues validate with TokenValidator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenValidator } from "@/lib/enforcement/token";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { bundleServer, followToRedirect, issuerConfig, OTHER_RESOURCE, pkcePair, registerClient, RESOURCE, RESOURCES, tokenRequest } from "./auth-server-helpers";

const REDIRECT = "http://127.0.0.1:8976/callback";
let as: AuthServer;

beforeAll(async () => {
  as = await startAuthServer({
    resources: RESOURCES,
    users: { alice: { tenant: "ten_demo", groups: ["engineering"] }, bob: { tenant: "ten_other" } },
  });
});
afterAll(async () => {
  await as?.stop();
});

async function publicClient() {
  return registerClient(as, {
    redirect_uris: [REDIRECT],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "none",
    client_name: "headless test client",
  });
}

function authorizeUrl(params: Record<string, string>): string {
  const u = new URL(`${as.url}/auth`);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.href;
}

describe("authorization code + PKCE with a resource indicator", () => {
  it("completes headlessly and the access token validates", async () => {
    const client = await publicClient();
    const { verifier, challenge } = pkcePair();
    const state = "st-123";
    const back = await followToRedirect(
      authorizeUrl({
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        response_type: "code",
        scope: "tickets:read tickets:write",
        code_challenge: challenge,
        code_challenge_method: "S256",
        state,
        resource: RESOURCE,
      }),
      REDIRECT,
    );
    expect(back.searchParams.get("error"), back.href).toBeNull();
    expect(back.searchParams.get("state")).toBe(state);
    expect(back.searchParams.get("iss")).toBe(as.issuer);
    const code = back.searchParams.get("code");
    expect(code).toBeTruthy();

    const { status, body } = await tokenRequest(as, {
      grant_type: "authorization_code",
      code: code!,
      redirect_uri: REDIRECT,
      client_id: client.client_id,
      code_verifier: verifier,
      resource: RESOURCE,
    });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.token_type).toBe("Bearer");
    expect(typeof body.refresh_token).toBe("string");

    const v = new TokenValidator();
    const server = bundleServer([issuerConfig(as)]);
    const r = await v.validate(body.access_token as string, server);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.claims.aud).toBe(RESOURCE);
    expect(r.principal).toMatchObject({ issuer: as.issuer, tenantId: "ten_demo", user: `${as.issuer}#alice`, subject: "alice", client: client.client_id, groups: ["engineering"], actors: [] });
    expect(r.principal.scopes.sort()).toEqual(["tickets:read", "tickets:write"]);

    // The same token is not for another resource.
    const other = await v.validate(body.access_token as string, bundleServer([issuerConfig(as)], OTHER_RESOURCE));
    expect(other.ok).toBe(false);

    // Refresh (resource given again), then revoke the refresh token (RFC 7009).
    const refreshed = await tokenRequest(as, { grant_type: "refresh_token", refresh_token: body.refresh_token as string, client_id: client.client_id, resource: RESOURCE });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const r2 = await v.validate(refreshed.body.access_token as string, server);
    expect(r2.ok && r2.principal.user).toBe(`${as.issuer}#alice`);

    const refreshToken = (refreshed.body.refresh_token as string | undefined) ?? (body.refresh_token as string);
    const revoke = (token: string, clientId: string) =>
      fetch(`${as.url}/token/revocation`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token, client_id: clientId }).toString(),
      });
    // Another client cannot revoke it.
    const intruder = await publicClient();
    await (await revoke(refreshToken, intruder.client_id)).body?.cancel();
    const still = await tokenRequest(as, { grant_type: "refresh_token", refresh_token: refreshToken, client_id: client.client_id, resource: RESOURCE });
    expect(still.status, JSON.stringify(still.body)).toBe(200);
    const current = (still.body.refresh_token as string | undefined) ?? refreshToken;

    const rev = await fetch(`${as.url}/token/revocation`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: current, client_id: client.client_id }).toString(),
    });
    expect(rev.status).toBe(200);
    const after = await tokenRequest(as, { grant_type: "refresh_token", refresh_token: current, client_id: client.client_id, resource: RESOURCE });
    expect(after.status).toBe(400);
    expect(after.body.error).toBe("invalid_grant");
  });

  it("logs in the account named by login_hint", async () => {
    const client = await publicClient();
    const { verifier, challenge } = pkcePair();
    const back = await followToRedirect(
      authorizeUrl({
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        response_type: "code",
        scope: "tickets:read",
        code_challenge: challenge,
        code_challenge_method: "S256",
        resource: RESOURCE,
        login_hint: "bob",
      }),
      REDIRECT,
    );
    const { body } = await tokenRequest(as, {
      grant_type: "authorization_code",
      code: back.searchParams.get("code")!,
      redirect_uri: REDIRECT,
      client_id: client.client_id,
      code_verifier: verifier,
      resource: RESOURCE,
    });
    const r = await new TokenValidator().validate(body.access_token as string, bundleServer([issuerConfig(as)]));
    expect(r.ok && r.principal).toMatchObject({ user: `${as.issuer}#bob`, tenantId: "ten_other", groups: [], scopes: ["tickets:read"] });
  });

  it("requires PKCE", async () => {
    const client = await publicClient();
    const back = await followToRedirect(authorizeUrl({ client_id: client.client_id, redirect_uri: REDIRECT, response_type: "code", scope: "tickets:read", resource: RESOURCE }), REDIRECT);
    expect(back.searchParams.get("error")).toBe("invalid_request");
    expect(back.searchParams.get("code")).toBeNull();
  });

  it("rejects a wrong code_verifier", async () => {
    const client = await publicClient();
    const { challenge } = pkcePair();
    const back = await followToRedirect(
      authorizeUrl({ client_id: client.client_id, redirect_uri: REDIRECT, response_type: "code", scope: "tickets:read", code_challenge: challenge, code_challenge_method: "S256", resource: RESOURCE }),
      REDIRECT,
    );
    const { status, body } = await tokenRequest(as, {
      grant_type: "authorization_code",
      code: back.searchParams.get("code")!,
      redirect_uri: REDIRECT,
      client_id: client.client_id,
      code_verifier: pkcePair().verifier,
      resource: RESOURCE,
    });
    expect(status).toBe(400);
    expect(body.error).toBe("invalid_grant");
  });

  it("rejects an unknown resource with invalid_target", async () => {
    const client = await publicClient();
    const { challenge } = pkcePair();
    const back = await followToRedirect(
      authorizeUrl({
        client_id: client.client_id,
        redirect_uri: REDIRECT,
        response_type: "code",
        scope: "tickets:read",
        code_challenge: challenge,
        code_challenge_method: "S256",
        resource: "https://evil.example/mcp",
      }),
      REDIRECT,
    );
    expect(back.searchParams.get("error")).toBe("invalid_target");
  });

  it("client credentials: the resource decides the audience; an unknown resource is invalid_target", async () => {
    const client = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_post" });
    const ok = await tokenRequest(as, { grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret!, resource: OTHER_RESOURCE, scope: "other:read" });
    expect(ok.status).toBe(200);
    const r = await new TokenValidator().validate(ok.body.access_token as string, bundleServer([issuerConfig(as)], OTHER_RESOURCE));
    expect(r.ok && r.principal).toMatchObject({ tenantId: "ten_demo", client: client.client_id, scopes: ["other:read"] });
    const bad = await tokenRequest(as, {
      grant_type: "client_credentials",
      client_id: client.client_id,
      client_secret: client.client_secret!,
      resource: "https://evil.example/mcp",
      scope: "other:read",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid_target");
  });

  it("serves its JWKS (public keys only) and metadata", async () => {
    const jwks = (await (await fetch(as.jwksUri)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "RSA", kid: as.publicJwk.kid });
    expect(jwks.keys[0]).not.toHaveProperty("d");
    const meta = (await (await fetch(`${as.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(meta).toMatchObject({ issuer: as.issuer, jwks_uri: as.jwksUri, code_challenge_methods_supported: ["S256"], revocation_endpoint: `${as.issuer}/token/revocation` });
    expect(meta.registration_endpoint).toBe(`${as.issuer}/reg`);
  });
});
