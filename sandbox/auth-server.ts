/**
 * A sandbox OAuth 2.1 authorization server (oidc-provider 9) for the demo and
 * the tests: dynamic client registration (open), authorization code + PKCE
 * (S256, required), client credentials, refresh tokens, RFC 8707 resource
 * indicators, RFC 7009 revocation, RFC 8693 token exchange (a client exchanges
 * a user's access token for one to a resource, `act` naming the client), JWT access tokens (RS256) whose `aud` is
 * the resource URI and which carry `tenant` (and `groups`) of the account.
 *
 *   PORT=3200 npx tsx sandbox/auth-server.ts
 *   RESOURCES='{"http://127.0.0.1:3100/mcp":{"scopes":["tickets:read"]}}' PORT=3200 npx tsx sandbox/auth-server.ts
 *   CLIENTS='[{"client_id":"mandate","client_secret":"…","redirect_uris":["http://127.0.0.1:3000/api/auth/callback/oidc"]}]' …
 *
 * There is no login UI: the interaction route logs in a fixed test account
 * (the `login_hint` of the authorization request if it names a configured
 * account, else the default one) and grants every requested scope, so a
 * headless client that follows redirects (keeping cookies) completes the
 * authorization code flow. Sandbox only, never in the product.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type JWTPayload } from "jose";
import Provider, { errors, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from "oidc-provider";

export interface AuthServerUser {
  tenant: string;
  groups?: string[];
  /** Released (verified) with the `email` scope: lets the sandbox act as an admin SSO provider. */
  email?: string;
  /** The `email_verified` claim released with `email`; default `true` (tests set odd values such as the string "false"). */
  emailVerified?: unknown;
}

export interface AuthServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Resource indicator (canonical resource URI) → the scopes it accepts. */
  resources: Record<string, { scopes: string[] }>;
  /** Test accounts by subject; default alice (ten_demo, groups engineering) and bob (ten_other). */
  users?: Record<string, AuthServerUser>;
  /** The account the interaction route logs in when no `login_hint` names one; default the first user. */
  defaultUser?: string;
  /** Tenant claim of client-credentials tokens when the client registered no `tenant` metadata; default "ten_demo". */
  clientTenant?: string;
  /** Access token lifetime, seconds (default 3600). */
  accessTokenTtl?: number;
  /** Statically registered clients (e.g. the control plane's admin sign-in client). */
  clients?: ClientMetadata[];
  /** Token exchange: other issuers (issuer → JWKS URI) whose access tokens are accepted as `subject_token`, besides this AS's own. */
  trustedSubjectIssuers?: Record<string, string>;
  /** Rotate refresh tokens on every use (a used one is then invalid, and its reuse revokes the grant); default oidc-provider's policy. */
  rotateRefreshToken?: boolean;
}

export interface MintOptions {
  /** Header overrides (alg, kid, typ…); the key stays the AS's RSA key. */
  header?: Record<string, unknown>;
  /** Seconds from now; default 300. Ignored when the claims give `exp`. */
  expiresIn?: number;
}

export interface AuthServer {
  /** `http://127.0.0.1:<port>` */
  issuer: string;
  /** Same as issuer (the base URL of every endpoint). */
  url: string;
  jwksUri: string;
  /** The AS's signing key, private part included: test-only, never served over HTTP. */
  privateJwk: JWK;
  publicJwk: JWK;
  /**
   * Signs a JWT access token with the AS's own key (test helper). Defaults:
   * iss = issuer, iat = now, exp = now + 300, header { alg: RS256, kid, typ: at+jwt };
   * every default can be overridden by `claims` (pass `undefined` to drop one).
   */
  mintToken(claims: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** RFC 8693 token exchanges answered (issued) and refused; set `refuseExchange` to refuse every exchange (tests). */
  tokenExchange: { issued: number; refused: number; refuseExchange: boolean };
  provider: Provider;
  stop(): Promise<void>;
}

const defaultUsers: Record<string, AuthServerUser> = {
  alice: { tenant: "ten_demo", groups: ["engineering"], email: "alice@sandbox.test" },
  bob: { tenant: "ten_other", groups: [], email: "bob@sandbox.test" },
};

function clientTenant(client: unknown, fallback: string): string {
  const t = (client as { tenant?: unknown } | undefined)?.tenant;
  return typeof t === "string" && t ? t : fallback;
}

export async function startAuthServer(opts: AuthServerOptions): Promise<AuthServer> {
  const host = opts.host ?? "127.0.0.1";
  const users = opts.users ?? defaultUsers;
  const defaultUser = opts.defaultUser ?? Object.keys(users)[0];
  if (!defaultUser || !users[defaultUser]) throw new Error("startAuthServer: no default user");
  const fallbackTenant = opts.clientTenant ?? "ten_demo";
  const resources = opts.resources;

  const { privateKey } = await generateKeyPair("RS256", { extractable: true, modulusLength: 2048 });
  const kid = randomBytes(8).toString("hex");
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk;

  // Listen first so the issuer can name the real port.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host}:${port}`;

  const configuration: Configuration = {
    clients: opts.clients ?? [],
    jwks: { keys: [privateJwk as never] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    // Clients may register for (and request) the resources' scopes too (the MCP SDK registers with the challenge's scopes).
    scopes: ["openid", "email", "offline_access", ...new Set(Object.values(opts.resources).flatMap((r) => r.scopes))],
    claims: { openid: ["sub", "tenant", "groups"], email: ["email", "email_verified"] },
    extraClientMetadata: {
      properties: ["tenant"],
      validator(_ctx, key, value) {
        if (key === "tenant" && value !== undefined && (typeof value !== "string" || !/^[\w.:-]{1,128}$/.test(value))) {
          throw new errors.InvalidClientMetadata("tenant must be a short string");
        }
      },
    },
    async findAccount(_ctx, sub) {
      const user = users[sub];
      if (!user) return undefined;
      return { accountId: sub, claims: () => ({ sub, tenant: user.tenant, groups: user.groups ?? [], ...(user.email ? { email: user.email, email_verified: user.emailVerified ?? true } : {}) }) };
    },
    async extraTokenClaims(_ctx, token) {
      const accountId = (token as { accountId?: string }).accountId;
      if (accountId) {
        const user = users[accountId];
        return user ? { tenant: user.tenant, groups: user.groups ?? [] } : undefined;
      }
      const clientId = (token as { clientId?: string }).clientId;
      const client = clientId ? await provider.Client.find(clientId) : undefined;
      return { tenant: clientTenant(client, fallbackTenant) };
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      clientCredentials: { enabled: true },
      // RFC 7009 §2.1: a client may revoke only its own tokens.
      revocation: { enabled: true, allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource(_ctx, _client, oneOf) {
          if (oneOf?.length) return oneOf[0];
          const all = Object.keys(resources);
          return all.length === 1 ? all[0] : undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx: KoaContextWithOIDC, resourceIndicator: string) {
          const r = resources[resourceIndicator];
          if (!r) throw new errors.InvalidTarget();
          return {
            scope: r.scopes.join(" "),
            audience: resourceIndicator,
            accessTokenTTL: opts.accessTokenTtl ?? 3600,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    ...(opts.rotateRefreshToken !== undefined ? { rotateRefreshToken: opts.rotateRefreshToken } : {}),
    ttl: {
      AccessToken: opts.accessTokenTtl ?? 3600,
      ClientCredentials: opts.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
      IdToken: 3600,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    renderError(ctx, out) {
      ctx.type = "json";
      ctx.body = out;
    },
  };

  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  const signingKey = await importJWK(privateJwk, "RS256");
  const verifyKey = await importJWK(publicJwk, "RS256");
  const tokenExchange = { issued: 0, refused: 0, refuseExchange: false };
  const jwksSets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  const remoteKeys = (uri: string) => jwksSets.get(uri) ?? jwksSets.set(uri, createRemoteJWKSet(new URL(uri))).get(uri)!;

  // RFC 8693 token exchange (oidc-provider 9 has no built-in handler): the authenticated client (the actor) presents
  // a user's access token issued here and gets a JWT access token for one configured resource, `act` naming the client.
  const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
  const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      const client = ctx.oidc.client!;
      const refuse = (error: string, description: string) => {
        tokenExchange.refused++;
        ctx.status = 400;
        ctx.body = { error, error_description: description };
      };
      if (tokenExchange.refuseExchange) return refuse("access_denied", "token exchange refused by policy");
      if (params.subject_token_type !== ACCESS_TOKEN_TYPE || !params.subject_token) return refuse("invalid_request", "subject_token of type access_token required");
      let subject: JWTPayload;
      try {
        const iss = decodeJwt(params.subject_token).iss;
        const other = iss && iss !== issuer ? opts.trustedSubjectIssuers?.[iss] : undefined;
        if (iss !== issuer && !other) throw new Error("untrusted issuer");
        ({ payload: subject } = other ? await jwtVerify(params.subject_token, remoteKeys(other), { issuer: iss }) : await jwtVerify(params.subject_token, verifyKey, { issuer }));
      } catch {
        return refuse("invalid_grant", "subject_token invalid");
      }
      const audience = params.resource ?? params.audience;
      const r = audience ? resources[audience] : undefined;
      if (!audience || !r) return refuse("invalid_target", "unknown resource");
      const wanted = (params.scope ?? r.scopes.join(" ")).split(" ").filter(Boolean);
      if (wanted.some((sc) => !r.scopes.includes(sc))) return refuse("invalid_scope", "scope not allowed for the resource");
      const now = Math.floor(Date.now() / 1000);
      const ttl = opts.accessTokenTtl ?? 3600;
      const exp = Math.min(now + ttl, typeof subject.exp === "number" ? subject.exp : now + ttl);
      const claims: Record<string, unknown> = {
        iss: issuer,
        sub: subject.sub,
        aud: audience,
        client_id: client.clientId,
        scope: wanted.join(" "),
        act: { sub: client.clientId },
        iat: now,
        exp,
        jti: randomBytes(8).toString("hex"),
      };
      const tenant = (subject as { tenant?: unknown }).tenant;
      if (typeof tenant === "string") claims.tenant = tenant;
      const token = await new SignJWT(claims as JWTPayload).setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt" }).sign(signingKey);
      tokenExchange.issued++;
      ctx.body = { access_token: token, issued_token_type: ACCESS_TOKEN_TYPE, token_type: "Bearer", expires_in: exp - now };
    },
    ["subject_token", "subject_token_type", "actor_token", "actor_token_type", "resource", "audience", "scope", "requested_token_type"],
  );

  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const details = await provider.interactionDetails(req, res);
    const prompt = details.prompt;
    if (prompt.name === "login") {
      const hint = typeof details.params.login_hint === "string" ? details.params.login_hint : undefined;
      const accountId = hint && users[hint] ? hint : defaultUser!;
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    if (prompt.name === "consent") {
      const accountId = details.session?.accountId;
      const clientId = String(details.params.client_id);
      const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId });
      if (!grant) throw new Error("grant not found");
      const d = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (d.missingOIDCScope?.length) grant.addOIDCScope(d.missingOIDCScope.join(" "));
      if (d.missingOIDCClaims?.length) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(" "));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    await provider.interactionFinished(req, res, { error: "access_denied", error_description: `unsupported prompt ${prompt.name}` }, { mergeWithLastSubmission: false });
  }

  handler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method === "GET" && /^\/interaction\/[\w-]+$/.test(path)) {
      interaction(req, res).catch((err: unknown) => {
        if (res.headersSent) return;
        res.statusCode = 400;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ error: "interaction_failed", error_description: err instanceof Error ? err.message : "error" }));
      });
      return;
    }
    callback(req, res);
  };

  return {
    issuer,
    url: issuer,
    jwksUri: `${issuer}/jwks`,
    privateJwk,
    publicJwk,
    provider,
    tokenExchange,
    async mintToken(claims, mintOpts = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = { iss: issuer, iat: now, exp: now + (mintOpts.expiresIn ?? 300), jti: randomBytes(8).toString("hex"), ...claims };
      for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
      return new SignJWT(payload as JWTPayload).setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt", ...mintOpts.header }).sign(signingKey);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const resources = process.env.RESOURCES
    ? (JSON.parse(process.env.RESOURCES) as Record<string, { scopes: string[] }>)
    : { "http://127.0.0.1:3100/mcp": { scopes: ["tickets:read", "tickets:write", "tickets:admin"] } };
  // CLIENTS: a JSON array of statically registered clients (e.g. the dashboard's SSO client for the e2e suite).
  const clients = process.env.CLIENTS ? (JSON.parse(process.env.CLIENTS) as ClientMetadata[]) : undefined;
  startAuthServer({ port: Number(process.env.PORT ?? 3200), host: process.env.HOST ?? "127.0.0.1", resources, clients })
    .then((as) => {
      console.log(`[sandbox] OAuth authorization server at ${as.issuer} (JWKS ${as.jwksUri}); resources: ${Object.keys(resources).join(", ")}`);
      const shutdown = () => void as.stop().then(() => process.exit(0));
      process.on("SIGINT", shutdown);
      process.on("SIGTERM", shutdown);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
