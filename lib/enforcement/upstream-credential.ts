/**
 * How an upstream credential from the vault goes onto a request to its
 * upstream: the value for each kind (API key, bearer, basic, the access token
 * of OAuth client credentials), where it goes (one header or one query
 * parameter), and the RFC 6749 §4.4 token request and answer. Shared by the
 * agent (calls, drift checks) and the control plane (catalogue import), so
 * both place a credential the same way. Pure: no network, no errors of either
 * side (callers wrap a `problem` in their own error). Values hold secrets:
 * never log them.
 */

export type UpstreamCredentialKind = "api_key" | "bearer" | "basic" | "oauth_client_credentials" | "oauth_token_exchange" | "oauth_user_brokered";
export type UpstreamSecret = string | { username: string; password: string } | { clientSecret: string };
export interface CredentialPlacement {
  in: "header" | "query";
  name: string;
}
export interface ClientCredentialsConfig {
  tokenUrl: string;
  clientId: string;
  scope?: string;
  audience?: string;
  authMethod: "client_secret_basic" | "client_secret_post";
}

/** The header or parameter value of a static credential (not OAuth), or the problem with the stored secret. */
export function staticCredentialValue(
  kind: Exclude<UpstreamCredentialKind, "oauth_client_credentials" | "oauth_token_exchange" | "oauth_user_brokered">,
  placement: CredentialPlacement,
  secret: UpstreamSecret,
): { value: string } | { problem: string } {
  if (kind === "basic") {
    if (typeof secret !== "object" || !("username" in secret)) return { problem: "a basic credential without username and password" };
    return { value: `Basic ${Buffer.from(`${secret.username}:${secret.password}`).toString("base64")}` };
  }
  if (typeof secret !== "string" || !secret) return { problem: `a ${kind} credential without a value` };
  return { value: kind === "bearer" && placement.in === "header" ? `Bearer ${secret}` : secret };
}

/** Puts a value where the placement says: into `headers` (lower-cased name) or the URL's query; returns the URL to call. */
export function placeCredential(url: string, headers: Record<string, string>, placement: CredentialPlacement, value: string): string {
  if (placement.in === "query") {
    const u = new URL(url);
    u.searchParams.set(placement.name, value);
    return u.toString();
  }
  headers[placement.name.toLowerCase()] = value;
  return url;
}

function formEncode(v: string): string {
  return encodeURIComponent(v).replace(/%20/g, "+");
}

/** The client secret of OAuth client credentials as stored (an object, or a bare string from older entries). */
export function clientSecretOf(secret: UpstreamSecret): string | null {
  return typeof secret === "object" && "clientSecret" in secret ? secret.clientSecret : typeof secret === "string" && secret ? secret : null;
}

/**
 * RFC 6749 §4.4 token request: form body with `scope`, the audience as an RFC
 * 8707 `resource` when it is a URI (else `audience`), and the client
 * authenticated by `client_secret_basic` (both parts form-urlencoded, §2.3.1)
 * or `client_secret_post`. Redirects are never followed.
 */
export function clientCredentialsRequest(
  oauth: ClientCredentialsConfig,
  clientSecret: string,
): { url: string; init: { method: "POST"; headers: Record<string, string>; body: string; redirect: "manual" } } {
  return tokenRequest(oauth, clientSecret, new URLSearchParams({ grant_type: "client_credentials" }));
}

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

/**
 * RFC 8693 §2.1 token exchange request: the caller's access token as
 * `subject_token` (type access_token), the upstream as `resource` (a URI) or
 * `audience`, `scope`, `requested_token_type` access_token; the agent is the
 * authenticated client, so the issued token's `act` names it (§4.1). Same
 * client authentication as client credentials. Redirects are never followed.
 */
export function tokenExchangeRequest(
  oauth: ClientCredentialsConfig,
  clientSecret: string,
  subjectToken: string,
): { url: string; init: { method: "POST"; headers: Record<string, string>; body: string; redirect: "manual" } } {
  const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, requested_token_type: ACCESS_TOKEN_TYPE });
  return tokenRequest(oauth, clientSecret, form);
}

function tokenRequest(
  oauth: ClientCredentialsConfig,
  clientSecret: string,
  form: URLSearchParams,
): { url: string; init: { method: "POST"; headers: Record<string, string>; body: string; redirect: "manual" } } {
  if (oauth.scope) form.set("scope", oauth.scope);
  if (oauth.audience) form.set(URL.canParse(oauth.audience) ? "resource" : "audience", oauth.audience);
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (oauth.authMethod === "client_secret_post") {
    form.set("client_id", oauth.clientId);
    form.set("client_secret", clientSecret);
  } else {
    headers.authorization = `Basic ${Buffer.from(`${formEncode(oauth.clientId)}:${formEncode(clientSecret)}`).toString("base64")}`;
  }
  return { url: oauth.tokenUrl, init: { method: "POST", headers, body: form.toString(), redirect: "manual" } };
}

/**
 * Reads a token endpoint's answer: the bearer access token and its lifetime,
 * or what went wrong (the HTTP status and the registered OAuth error code
 * only, never the body).
 */
export function readTokenAnswer(
  status: number,
  body: unknown,
): { accessToken: string; expiresIn: number | null } | { problem: "refused" | "failed" | "token_type"; status: number; code: string | null } {
  const b = (body && typeof body === "object" ? body : null) as { access_token?: unknown; expires_in?: unknown; token_type?: unknown; error?: unknown } | null;
  if (status !== 200 || !b || typeof b.access_token !== "string" || !b.access_token) {
    const code = typeof b?.error === "string" && /^[\x20-\x7e]{1,64}$/.test(b.error) ? b.error : null;
    return { problem: status === 400 || status === 401 || status === 403 ? "refused" : "failed", status, code };
  }
  if (typeof b.token_type === "string" && b.token_type.toLowerCase() !== "bearer") return { problem: "token_type", status, code: null };
  return { accessToken: b.access_token, expiresIn: typeof b.expires_in === "number" && b.expires_in > 0 ? b.expires_in : null };
}
