import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { currentActor } from "@/lib/auth/session";
import { getEnv } from "@/lib/env";
import { LoginForm } from "./login-form";

export const metadata: Metadata = { title: "Sign in" };
export const dynamic = "force-dynamic";

export default async function LoginPage({ searchParams }: { searchParams: Promise<{ error?: string; callbackUrl?: string }> }) {
  if (await currentActor()) redirect("/");
  const sp = await searchParams;
  const env = getEnv();
  const callbackUrl = sp.callbackUrl?.startsWith("/") && !sp.callbackUrl.startsWith("//") ? sp.callbackUrl : "/";
  return (
    <main className="flex min-h-screen items-center justify-center px-4">
      <div className="w-full max-w-sm">
        <div className="mb-6 text-center">
          <div className="mx-auto flex h-10 w-10 items-center justify-center rounded-lg bg-indigo-600 text-lg font-bold text-white">M</div>
          <h1 className="mt-3 text-xl font-semibold text-slate-900">Sign in to Mandate</h1>
          <p className="mt-1 text-sm text-slate-600">Authorization control plane for MCP</p>
        </div>
        <LoginForm callbackUrl={callbackUrl} initialError={sp.error === "AccessDenied" ? "Your account has no access to Mandate." : undefined} oidcName={env.OIDC_ISSUER ? env.OIDC_NAME : null} />
      </div>
    </main>
  );
}
