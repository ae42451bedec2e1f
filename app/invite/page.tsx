import type { Metadata } from "next";
import { getEnv } from "@/lib/env";
import { InviteForm } from "./invite-form";

export const metadata: Metadata = { title: "Accept your invitation" };
export const dynamic = "force-dynamic";

// The invitation's secret is in the URL fragment: it never reaches this server's logs; the form reads it in the browser.
export default function InvitePage() {
  const env = getEnv();
  return (
    <main className="flex min-h-screen items-center justify-center px-4">
      <div className="w-full max-w-sm">
        <div className="mb-6 text-center">
          <div className="mx-auto flex h-10 w-10 items-center justify-center rounded-lg bg-indigo-600 text-lg font-bold text-white">M</div>
          <h1 className="mt-3 text-xl font-semibold text-slate-900">Welcome to Mandate</h1>
          <p className="mt-1 text-sm text-slate-600">Choose the password you will sign in with.</p>
        </div>
        <InviteForm oidcName={env.OIDC_ISSUER ? env.OIDC_NAME : null} />
      </div>
    </main>
  );
}
