import "server-only";
import { eq, or } from "drizzle-orm";
import type { NextAuthOptions } from "next-auth";
import CredentialsProvider from "next-auth/providers/credentials";
import { users } from "@/db/schema";
import { getDb } from "@/lib/db";
import { getEnv } from "@/lib/env";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { FailureLimiter } from "./rate-limit";
import { emailSchema, verifyCredentials } from "./users";

const g = globalThis as unknown as { __mandateLimiters?: { byAccount: FailureLimiter; byIp: FailureLimiter } };

function limiters() {
  if (!g.__mandateLimiters) {
    const env = getEnv();
    const windowMs = env.MANDATE_LOGIN_WINDOW_SECONDS * 1000;
    g.__mandateLimiters = {
      byAccount: new FailureLimiter(env.MANDATE_LOGIN_MAX_FAILURES, windowMs),
      // One address may try several accounts, but not without bound.
      byIp: new FailureLimiter(env.MANDATE_LOGIN_MAX_FAILURES * 4, windowMs),
    };
  }
  return g.__mandateLimiters;
}

function clientIp(headers: Record<string, string | string[] | undefined> | Headers | undefined): string {
  const get = (k: string) => (headers instanceof Headers ? headers.get(k) : (headers?.[k] as string | undefined)) ?? undefined;
  return get("x-forwarded-for")?.split(",")[0]?.trim() || get("x-real-ip") || "local";
}

export class SignInThrottled extends Error {}

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
  const providers: NextAuthOptions["providers"] = [
    CredentialsProvider({
      id: "credentials",
      name: "E-mail and password",
      credentials: { email: { label: "E-mail", type: "email" }, password: { label: "Password", type: "password" } },
      async authorize(credentials, req) {
        const email = String(credentials?.email ?? "").trim().toLowerCase();
        const password = String(credentials?.password ?? "");
        const { byAccount, byIp } = limiters();
        const ip = clientIp(req?.headers);
        const wait = Math.max(byAccount.retryAfter(`${email}|${ip}`), byIp.retryAfter(ip));
        if (wait > 0) throw new SignInThrottled(`Too many failed sign-ins. Try again in ${wait} seconds.`);
        const user = email && password ? await verifyCredentials(await getDb(), email, password) : null;
        if (!user) {
          byAccount.fail(`${email}|${ip}`);
          byIp.fail(ip);
          return null;
        }
        byAccount.reset(`${email}|${ip}`);
        return { id: user.id, email: user.email, name: user.name, sv: user.sessionVersion };
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
