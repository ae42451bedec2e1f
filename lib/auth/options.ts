import "server-only";
import { eq, or } from "drizzle-orm";
import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { users } from "@/db/schema";
import { getDb } from "@/lib/db";
import { getEnv } from "@/lib/env";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { parseTrustedProxies } from "./client-address";
import { signInWithPassword } from "./sign-in";
import { emailSchema } from "./users";


interface EmailClaims {
  sub?: string;
  email?: string;
  email_verified?: boolean;
}

/**
 * The e-mail claims of an OIDC sign-in. Providers that issue an access token
 * with the ID token may release scope claims only at the UserInfo endpoint
 * (OpenID Connect Core §5.4; oidc-provider does by default), so when the ID
 * token lacks them they are read there, and used only if UserInfo names the
 * same subject (§5.3.2).
 */
async function emailClaims(issuer: string, sub: string, idToken: EmailClaims | undefined, accessToken: string | undefined): Promise<EmailClaims> {
  if (idToken?.email || !accessToken) return idToken ?? {};
  try {
    const meta = (await (await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) })).json()) as { userinfo_endpoint?: string };
    if (!meta.userinfo_endpoint) return idToken ?? {};
    const res = await fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) return idToken ?? {};
    const info = (await res.json()) as EmailClaims;
    return info.sub === sub ? info : (idToken ?? {});
  } catch {
    return idToken ?? {};
  }
}

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
      profile(p: { sub: string; email?: string; email_verified?: boolean; name?: string }) {
        return { id: p.sub, email: p.email ?? null, name: p.name ?? null, emailVerified: p.email_verified ?? false };
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
        // OIDC users map to an existing Mandate user by subject, or by verified e-mail.
        const db = await getDb();
        const sub = String(account.providerAccountId);
        const claims = await emailClaims(getEnv().OIDC_ISSUER!, sub, profile as EmailClaims | undefined, account.access_token);
        const email = claims?.email_verified && claims.email ? emailSchema.safeParse(claims.email) : undefined;
        const [found] = await db
          .select()
          .from(users)
          .where(email?.success ? or(eq(users.oidcSubject, sub), eq(users.email, email.data)) : eq(users.oidcSubject, sub));
        let row = found;
        if (!row) {
          if (!env.MANDATE_OIDC_AUTO_PROVISION || !email?.success) return "/login?error=AccessDenied";
          const id = newId("user");
          [row] = await db.insert(users).values({ id, email: email.data, name: user.name ?? "", role: "member", oidcSubject: sub }).returning();
          await recordEvent(db, "system", { action: "user.provision", targetType: "user", targetId: id, tenantId: null, after: { email: email.data } });
        } else if (!row.oidcSubject) {
          await db.update(users).set({ oidcSubject: sub }).where(eq(users.id, row.id));
        } else if (row.oidcSubject !== sub) {
          return "/login?error=AccessDenied";
        }
        if (!row || row.disabled) return "/login?error=AccessDenied";
        await db.update(users).set({ lastLoginAt: new Date() }).where(eq(users.id, row.id));
        Object.assign(user, { id: row.id, sv: row.sessionVersion });
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
