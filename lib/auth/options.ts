import "server-only";
import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { getDb } from "@/lib/db";
import { getEnv } from "@/lib/env";
import { parseTrustedProxies } from "./client-address";
import { readOidcIdentity, resolveOidcUser, touchSsoLogin } from "./oidc-link";
import { signInWithPassword } from "./sign-in";

let cached: NextAuthOptions | undefined;

/** next-auth configuration: e-mail + password always, generic OIDC when configured. */
export function getAuthOptions(): NextAuthOptions {
  if (cached) return cached;
  const env = getEnv();
  const signInSettings = {
    maxFailures: env.MANDATE_LOGIN_MAX_FAILURES,
    windowSeconds: env.MANDATE_LOGIN_WINDOW_SECONDS,
    trustedProxies: parseTrustedProxies(env.MANDATE_TRUSTED_PROXIES).list,
  };
  const oidcPolicy = { emailLinking: env.MANDATE_OIDC_EMAIL_LINKING, linkOwners: env.MANDATE_OIDC_LINK_OWNERS, autoProvision: env.MANDATE_OIDC_AUTO_PROVISION };
  const providers: NextAuthOptions["providers"] = [
    CredentialsProvider({
      id: "credentials",
      name: "E-mail and password",
      credentials: { email: { label: "E-mail", type: "email" }, password: { label: "Password", type: "password" } },
      async authorize(credentials, req) {
        // next-auth hands over the request headers only; the client address comes from the server's peer stamp (lib/auth/client-address.ts).
        const user = await signInWithPassword(await getDb(), credentials, req?.headers, signInSettings);
        return user ? { id: user.id, email: user.email, name: user.name, sv: user.sessionVersion } : null;
      },
    }),
  ];
  if (env.OIDC_ISSUER && env.OIDC_CLIENT_ID && env.OIDC_CLIENT_SECRET) {
    providers.push({
      id: "oidc",
      name: env.OIDC_NAME,
      type: "oauth",
      wellKnown: `${env.OIDC_ISSUER.replace(/\/$/, "")}/.well-known/openid-configuration`,
      clientId: env.OIDC_CLIENT_ID,
      clientSecret: env.OIDC_CLIENT_SECRET,
      authorization: { params: { scope: "openid email profile" } },
      idToken: true,
      checks: ["pkce", "state", "nonce"],
      profile(p: { sub: string; email?: unknown; email_verified?: unknown; name?: unknown }) {
        return { id: p.sub, email: typeof p.email === "string" ? p.email : null, name: typeof p.name === "string" ? p.name : null, emailVerified: p.email_verified === true };
      },
    });
  }

  cached = {
    secret: env.NEXTAUTH_SECRET,
    providers,
    session: { strategy: "jwt", maxAge: 8 * 60 * 60 },
    pages: { signIn: "/login", error: "/login" },
    useSecureCookies: env.NEXTAUTH_URL.startsWith("https://"),
    callbacks: {
      async signIn({ user, account, profile }) {
        if (account?.provider !== "oidc") return true;
        // The ID token was validated by next-auth (openid-client) against the discovered issuer.
        const claims = (profile ?? {}) as { iss?: unknown; sub?: unknown; email?: unknown; email_verified?: unknown; name?: unknown };
        const issuer = typeof claims.iss === "string" ? claims.iss : env.OIDC_ISSUER!;
        const identity = await readOidcIdentity(issuer, String(account.providerAccountId), claims, account.access_token);
        const db = await getDb();
        const found = await resolveOidcUser(db, identity, oidcPolicy);
        if (!found.ok) return "/login?error=AccessDenied";
        await touchSsoLogin(db, found.user.id);
        Object.assign(user, { id: found.user.id, sv: found.user.sessionVersion });
        return true;
      },
      async jwt({ token, user }) {
        if (user) {
          token.sub = user.id;
          token.sv = (user as { sv?: number }).sv ?? 1;
        }
        return token;
      },
      async session({ session, token }) {
        return { ...session, user: { id: token.sub, email: session.user?.email, name: session.user?.name }, sv: token.sv };
      },
    },
  };
  return cached;
}
