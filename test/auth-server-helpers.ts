/** Helpers for tests against the sandbox authorization server (real HTTP, no mocks). */
import { createHash, randomBytes } from "node:crypto";
import type { BundleServer, BundleTrust } from "@/lib/enforcement/bundle";
import type { AuthServer } from "@/sandbox/auth-server";

export const RESOURCE = "http://127.0.0.1:3100/mcp";
export const OTHER_RESOURCE = "http://127.0.0.1:3101/mcp";
export const RESOURCES = {
  [RESOURCE]: { scopes: ["tickets:read", "tickets:write"] },
  [OTHER_RESOURCE]: { scopes: ["other:read"] },
};

/** The sandbox's tenants: each trusts the given issuers itself (legacyTrust). */
export const SANDBOX_TENANTS = ["ten_demo", "ten_other", "ten_acme"];

export function bundleServer(issuers: BundleServer["issuers"], resourceUri = RESOURCE, tenantIds = SANDBOX_TENANTS): BundleServer {
  return {
    id: "srv_test",
    name: "tickets",
    tenantId: tenantIds[0]!,
    tenantIds,
    resourceUri,
    upstreamUrl: "http://127.0.0.1:3100/mcp",
    scopes: ["tickets:read", "tickets:write"],
    issuers,
    trust: legacyTrust(tenantIds, issuers),
    prm: { resource: resourceUri, authorization_servers: issuers.map((i) => i.issuer), scopes_supported: ["tickets:read", "tickets:write"], bearer_methods_supported: ["header"] },
  };
}

/**
 * The trust entries that reproduce the old per-server issuers for these
 * tenants: each tenant trusts each issuer itself, mapped by the old tenant
 * claim to its own id only (what migration 0004 backfills).
 */
export function legacyTrust(tenantIds: string[], issuers: BundleServer["issuers"]): BundleTrust[] {
  return tenantIds.flatMap((tenantId) =>
    issuers.map((i) => ({
      tenantId,
      issuer: i.issuer,
      ...(i.jwksUri ? { jwksUri: i.jwksUri } : {}),
      discovery: i.discovery,
      algorithms: i.algorithms,
      claims: { user: i.claims?.user ?? "sub", client: i.claims?.client ?? "client_id", scopes: i.claims?.scopes ?? "scope", groups: "groups" },
      tenantMapping: { mode: "claim" as const, claim: i.claims?.tenant ?? "tenant", values: [tenantId] },
      ...(i.revocationEndpoint ? { revocationEndpoint: i.revocationEndpoint } : {}),
    })),
  );
}

export function issuerConfig(as: AuthServer, over: Partial<BundleServer["issuers"][number]> = {}): BundleServer["issuers"][number] {
  return { issuer: as.issuer, discovery: true, algorithms: ["RS256", "ES256"], claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope" }, ...over };
}

/** A fetch that records every URL it is asked for, then asks the real network. */
export function countingFetch(): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const f: typeof fetch = (input, init) => {
    calls.push(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    return fetch(input, init);
  };
  return { fetch: f, calls };
}

export async function registerClient(as: AuthServer, metadata: Record<string, unknown>): Promise<{ client_id: string; client_secret?: string }> {
  const res = await fetch(`${as.url}/reg`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(metadata) });
  const body = (await res.json()) as { client_id: string; client_secret?: string };
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function tokenRequest(as: AuthServer, params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${as.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Registers a confidential client-credentials client and returns an access token for `resource`. */
export async function clientCredentialsToken(as: AuthServer, resource: string, scope: string, tenant = "ten_acme"): Promise<{ token: string; clientId: string }> {
  const client = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_post", tenant });
  const { status, body } = await tokenRequest(as, { grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret!, resource, scope });
  if (status !== 200 || typeof body.access_token !== "string") throw new Error(`token request failed: ${status} ${JSON.stringify(body)}`);
  return { token: body.access_token, clientId: client.client_id };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/**
 * Follows the authorization request's redirects headlessly (keeping cookies,
 * as a browser would) until the AS redirects to `redirectUri`; returns that URL.
 */
export async function followToRedirect(authorizeUrl: string, redirectUri: string, maxHops = 12): Promise<URL> {
  const jar = new Map<string, string>();
  let url = authorizeUrl;
  for (let hop = 0; hop < maxHops; hop++) {
    if (url.startsWith(redirectUri)) return new URL(url);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const res = await fetch(url, { redirect: "manual", headers: cookie ? { cookie } : {} });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (!value || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name);
      else jar.set(name, value);
    }
    const location = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !location) {
      throw new Error(`expected a redirect from ${new URL(url).pathname}, got ${res.status}: ${(await res.text()).slice(0, 300)}`);
    }
    await res.body?.cancel();
    url = new URL(location, url).href;
  }
  throw new Error("too many redirects");
}
